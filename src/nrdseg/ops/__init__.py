"""Numeric kernels: the per-patch dynamic MLP of NRD."""

from nrdseg.ops.dynamic_mlp import mlp_param_count, patch_coordinates, per_patch_mlp

__all__ = ["mlp_param_count", "patch_coordinates", "per_patch_mlp"]
