"""nrdseg: high-resolution semantic segmentation with Dynamic Neural Representational Decoders."""

from nrdseg.checkpoint.format import save_pretrained
from nrdseg.models import Segmentor, create_model, list_models, register_model
from nrdseg.models.load import load_model
from nrdseg.utils.version import __version__

__all__ = [
    "Segmentor",
    "__version__",
    "create_model",
    "list_models",
    "load_model",
    "register_model",
    "save_pretrained",
]
