"""Encoders, decoders and the model zoo."""

from nrdseg.models.segmentor import Segmentor
from nrdseg.models.zoo import ModelSpec, create_model, list_models, register_model

__all__ = ["ModelSpec", "Segmentor", "create_model", "list_models", "register_model"]
