"""nrdseg: high-resolution semantic segmentation with Dynamic Neural Representational Decoders."""

from nrdseg.checkpoint import load_model, save_pretrained
from nrdseg.models import Segmentor, create_model, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "Segmentor",
    "__version__",
    "create_model",
    "list_models",
    "load_model",
    "register_model",
    "save_pretrained",
]
