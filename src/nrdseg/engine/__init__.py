"""Training: the run built from its config (``build``), the trainer loop, optimiser and
schedule, data order, distributed processes, random state and the event log."""
