"""Training and evaluation machinery: metrics, inference modes, the evaluator."""
