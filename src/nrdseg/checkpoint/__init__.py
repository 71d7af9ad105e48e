"""Checkpoints on disk, below the models: the format (model record + safetensors), state
dicts, a training run's folder, the Hub, and the one resolver of checkpoint paths.

It handles any ``nn.Module`` that carries ``config`` and ``meta``; rebuilding a zoo model
from a checkpoint is ``nrdseg.models.load.load_model`` (``nrdseg.load_model``).
"""
