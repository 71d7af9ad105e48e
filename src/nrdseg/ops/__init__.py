"""Numeric kernels and pure tensor helpers: the per-patch dynamic MLP of NRD (reference,
inference and Triton paths), CARAFE reassembly (and FreqFusion's sharpening), DySample's
point sampling, local cosine similarity, BatchNorm folding, cross-entropy, resizing,
upsample + argmax by bands, label patches, normalisation, sliding windows."""

from nrdseg.ops.dynamic_mlp import mlp_param_count, patch_coordinates, per_patch_mlp

__all__ = ["mlp_param_count", "patch_coordinates", "per_patch_mlp"]
