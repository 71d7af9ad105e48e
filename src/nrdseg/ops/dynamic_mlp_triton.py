"""A fused Triton kernel for the inference per-patch MLP: one program per cell.

Each program loads its cell's N generated parameters once, gathers the s x s block of
[coords, guidance] straight from the strided maps, runs the three layers in registers and
writes the logits in place, so every byte crosses memory once: params + guidance in,
logits out. Fixed coordinates come from a tiny (C_c, s, s) table. ``tl.dot`` runs with
``input_precision="ieee"`` so results match float32 PyTorch rather than TF32.
"""

from __future__ import annotations

import torch

from nrdseg.utils.optional import is_installed

_HAS_TRITON = is_installed("triton")


def triton_usable(*tensors: torch.Tensor | None) -> bool:
    """True when Triton is installed, the tensors live on CUDA and no gradient is needed.

    Never while exporting (ONNX, torch.export, TorchScript tracing): the exported graph
    must hold portable operators, not a CUDA kernel.
    """
    present = [t for t in tensors if t is not None]
    if not _HAS_TRITON or not all(t.is_cuda for t in present):
        return False
    if torch.jit.is_tracing() or torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export():
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in present))


def _pow2(n: int, *, minimum: int = 16) -> int:
    """``tl.dot`` wants power-of-two tile sides of at least 16."""
    return max(minimum, 1 << max(n - 1, 0).bit_length())


if _HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _patch_mlp_kernel(
        guide_ptr,
        coord_ptr,
        param_ptr,
        out_ptr,
        cells_h,
        cells_w,
        g_sb,
        g_sc,
        g_sh,
        g_sw,
        p_sb,
        p_sn,
        p_sh,
        p_sw,
        o_sb,
        o_sc,
        o_sh,
        o_sw,
        S: tl.constexpr,
        N_COORD: tl.constexpr,
        N_GUIDE: tl.constexpr,
        HIDDEN: tl.constexpr,
        CLASSES: tl.constexpr,
        PIX: tl.constexpr,
        CIN_P: tl.constexpr,
        HID_P: tl.constexpr,
        CLS_P: tl.constexpr,
    ):
        cin = N_COORD + N_GUIDE
        cell = tl.program_id(0)
        per_image = cells_h * cells_w
        b = (cell // per_image).to(tl.int64)
        rem = cell % per_image
        ci = rem // cells_w
        cj = rem % cells_w

        pix = tl.arange(0, PIX)
        pix_ok = pix < S * S
        row = ci * S + pix // S
        col = cj * S + pix % S

        k = tl.arange(0, CIN_P)
        coord_mask = pix_ok[:, None] & (k < N_COORD)[None, :]
        x = tl.load(coord_ptr + k[None, :] * (S * S) + pix[:, None], mask=coord_mask, other=0.0)
        guide_mask = pix_ok[:, None] & ((k >= N_COORD) & (k < cin))[None, :]
        g_off = b * g_sb + (k - N_COORD)[None, :] * g_sc + row[:, None] * g_sh + col[:, None] * g_sw
        x = x.to(tl.float32) + tl.load(guide_ptr + g_off, mask=guide_mask, other=0.0).to(tl.float32)

        base = param_ptr + b * p_sb + ci * p_sh + cj * p_sw
        hid = tl.arange(0, HID_P)
        hid_ok = hid < HIDDEN
        # Layer 0: w0 is (HIDDEN, cin) out-major at offset 0, b0 follows.
        w_mask = (k < cin)[:, None] & hid_ok[None, :]
        w0t = tl.load(base + (hid[None, :] * cin + k[:, None]) * p_sn, mask=w_mask, other=0.0)
        b0 = tl.load(base + (HIDDEN * cin + hid) * p_sn, mask=hid_ok, other=0.0)
        h = tl.dot(x, w0t.to(tl.float32), input_precision="ieee") + b0.to(tl.float32)[None, :]
        h = tl.maximum(h, 0.0)
        # Layer 1: w1 (HIDDEN, HIDDEN), b1.
        off1 = HIDDEN * cin + HIDDEN
        w_mask = hid_ok[:, None] & hid_ok[None, :]
        w1t = tl.load(
            base + (off1 + hid[None, :] * HIDDEN + hid[:, None]) * p_sn, mask=w_mask, other=0.0
        )
        b1 = tl.load(base + (off1 + HIDDEN * HIDDEN + hid) * p_sn, mask=hid_ok, other=0.0)
        h = tl.dot(h, w1t.to(tl.float32), input_precision="ieee") + b1.to(tl.float32)[None, :]
        h = tl.maximum(h, 0.0)
        # Layer 2: w2 (CLASSES, HIDDEN), b2.
        off2 = off1 + HIDDEN * HIDDEN + HIDDEN
        cls = tl.arange(0, CLS_P)
        cls_ok = cls < CLASSES
        w_mask = hid_ok[:, None] & cls_ok[None, :]
        w2t = tl.load(
            base + (off2 + cls[None, :] * HIDDEN + hid[:, None]) * p_sn, mask=w_mask, other=0.0
        )
        b2 = tl.load(base + (off2 + CLASSES * HIDDEN + cls) * p_sn, mask=cls_ok, other=0.0)
        out = tl.dot(h, w2t.to(tl.float32), input_precision="ieee") + b2.to(tl.float32)[None, :]

        o_off = b * o_sb + cls[None, :] * o_sc + row[:, None] * o_sh + col[:, None] * o_sw
        o_mask = pix_ok[:, None] & cls_ok[None, :]
        tl.store(out_ptr + o_off, out.to(out_ptr.dtype.element_ty), mask=o_mask)


def patch_mlp_triton(
    *,
    guidance: torch.Tensor | None,
    coords: torch.Tensor | None,
    params: torch.Tensor,
    hidden_channels: int,
    num_classes: int,
) -> torch.Tensor:
    """The fused kernel; same contract as
    :func:`nrdseg.ops.dynamic_mlp_inference.patch_mlp_inference` (inputs normalized)."""
    if not _HAS_TRITON:
        raise RuntimeError("the Triton per-patch MLP needs the 'triton' package")
    batch, _, cells_h, cells_w = params.shape
    s = coords.shape[-1] if coords is not None else guidance.shape[-1] // cells_w
    n_coord = 0 if coords is None else coords.shape[0]
    n_guide = 0 if guidance is None else guidance.shape[1]
    coord_table = (coords if coords is not None else params.new_zeros(1)).contiguous()
    guide = guidance if guidance is not None else coord_table
    g_strides = guidance.stride() if guidance is not None else (0, 0, 0, 0)
    out = torch.empty(
        batch,
        num_classes,
        cells_h * s,
        cells_w * s,
        device=params.device,
        dtype=params.dtype,
        memory_format=torch.channels_last,
    )
    grid = (batch * cells_h * cells_w,)
    _patch_mlp_kernel[grid](
        guide,
        coord_table,
        params,
        out,
        cells_h,
        cells_w,
        *g_strides,
        *params.stride(),
        *out.stride(),
        S=s,
        N_COORD=n_coord,
        N_GUIDE=n_guide,
        HIDDEN=hidden_channels,
        CLASSES=num_classes,
        PIX=_pow2(s * s),
        CIN_P=_pow2(n_coord + n_guide),
        HID_P=_pow2(hidden_channels),
        CLS_P=_pow2(num_classes),
        num_warps=4,
    )
    return out
