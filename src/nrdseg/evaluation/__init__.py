"""Scoring a model: metrics (mIoU, trimap mIoU), inference modes (whole, slide, TTA),
the evaluation loop and its report, and the inference runtime (AMP, channels_last, compile)."""
