"""NRD: a controller generates, per stride-32 cell, a tiny MLP that decodes its label patch."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from nrdseg.models.blocks import ConvBNReLU, init_conv_module
from nrdseg.models.heads.base import DecodeHead
from nrdseg.models.heads.nrd_inference import nrd_inference_forward, supports_folding
from nrdseg.ops.dynamic_mlp import mlp_param_count, patch_coordinates, per_patch_mlp, split_params
from nrdseg.ops.resize import resize

#: How the controller's final bias starts: "zeros" (the authors') or "template".
MLP_BIAS_INITS = ("zeros", "template")


class NRDHead(DecodeHead):
    """Dynamic neural representational decoder (Zhang et al., NeurIPS 2021).

    The controller (3x3 conv + BN + ReLU, 1x1 conv) turns each cell of the encoder output
    into the N parameters of g_theta: (coords + guidance) -> C_r -> C_r -> classes. g_theta
    runs on the s x s block of the stride-4 map that the cell covers, so the logits come
    out at s times the encoder's resolution (stride 4 for s = 8 on a stride-32 encoder).
    """

    inputs: ClassVar[dict[str, str]] = {"in_channels": "neck", "low_level_channels": "stride4"}
    width_options = ("controller_channels",)
    classifiers = ()
    own_init: ClassVar[dict[str, str]] = {
        "controller.1": "xavier normal / N, the authors' (tests/ops/test_dynamic_mlp.py)"
    }

    def __init__(
        self,
        *,
        in_channels: int,
        low_level_channels: int,
        num_classes: int,
        controller_channels: int = 512,
        rep_channels: int = 16,
        guidance_channels: int = 16,
        guidance_hidden: int = 48,
        upsample_factor: int = 8,
        use_guidance: bool = True,
        use_coords: bool = True,
        mlp_bias_init: str = "zeros",
    ) -> None:
        super().__init__()
        if not (use_guidance or use_coords):
            raise ValueError("NRD needs at least one input: use_guidance or use_coords")
        if mlp_bias_init not in MLP_BIAS_INITS:
            raise ValueError(
                f"mlp_bias_init must be one of {MLP_BIAS_INITS}, got {mlp_bias_init!r}"
            )
        self.mlp_bias_init = mlp_bias_init
        self.num_classes = num_classes
        self.rep_channels = rep_channels
        self.upsample_factor = upsample_factor
        self.use_coords = use_coords
        self.mlp_in_channels = (2 if use_coords else 0) + (guidance_channels if use_guidance else 0)
        self.num_params = mlp_param_count(
            in_channels=self.mlp_in_channels,
            hidden_channels=rep_channels,
            num_classes=num_classes,
        )
        self.controller = nn.Sequential(
            ConvBNReLU(in_channels, controller_channels, kernel_size=3),
            nn.Conv2d(controller_channels, self.num_params, kernel_size=1),
        )
        self.guidance = (
            nn.Sequential(
                ConvBNReLU(low_level_channels, guidance_hidden, kernel_size=3),
                # A norm- and activation-free ConvModule in the official head: kaiming too.
                init_conv_module(nn.Conv2d(guidance_hidden, guidance_channels, kernel_size=1)),
            )
            if use_guidance
            else None
        )
        self.input_norm = nn.BatchNorm2d(self.mlp_in_channels)
        self._init_controller()

    # The parts by name, for the folded inference path; the Sequentials stay, since their
    # positions are the checkpoint keys (``controller.0.0.weight``, ``controller.1.bias``).
    @property
    def controller_conv(self) -> ConvBNReLU:
        """The controller's 3x3 conv + BN + ReLU on the encoder output."""
        return self.controller[0]

    @property
    def controller_out(self) -> nn.Conv2d:
        """The controller's 1x1 conv to the N parameters of each cell's MLP."""
        return self.controller[1]

    @property
    def guidance_conv(self) -> ConvBNReLU:
        """The guidance branch's 3x3 conv + BN + ReLU on the stride-4 map (``use_guidance``)."""
        return self.guidance[0]

    @property
    def guidance_out(self) -> nn.Conv2d:
        """The guidance branch's 1x1 conv to C_m channels, with bias (``use_guidance``)."""
        return self.guidance[1]

    def _init_controller(self) -> None:
        """Xavier-normal scaled by 1/N so that the generated MLPs start near zero (official).

        ``mlp_bias_init="template"`` also sets the bias of the hidden layers' weights (w0,
        w1) to one kaiming-normal draw, so every cell's MLP starts as the same live random
        network of its inputs instead of a near-zero product of three near-zero layers.
        """
        last = self.controller_out
        nn.init.xavier_normal_(last.weight)
        with torch.no_grad():
            last.weight.div_(self.num_params)
        nn.init.zeros_(last.bias)
        if self.mlp_bias_init == "template":
            w0, _, w1, *_ = split_params(
                last.bias.data[None],
                in_channels=self.mlp_in_channels,
                hidden_channels=self.rep_channels,
                num_classes=self.num_classes,
            )
            for weight in (w0[0], w1[0]):  # views into the bias
                nn.init.kaiming_normal_(weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor, low_level: torch.Tensor) -> torch.Tensor:
        """Eval mode takes the folded inference path; training the plain differentiable one."""
        if not self.training and supports_folding(self):
            return nrd_inference_forward(self, x, low_level)
        return self.forward_plain(x, low_level)

    def forward_plain(self, x: torch.Tensor, low_level: torch.Tensor) -> torch.Tensor:
        """The decoder as the paper writes it: BatchNorms applied, inputs concatenated."""
        params = self.controller(x)
        batch, _, cells_h, cells_w = params.shape
        s = self.upsample_factor
        size = (cells_h * s, cells_w * s)
        inputs = []
        if self.use_coords:
            coords = patch_coordinates(s, device=x.device, dtype=params.dtype)
            inputs.append(coords.repeat(1, cells_h, cells_w).expand(batch, -1, -1, -1))
        if self.guidance is not None:
            inputs.append(resize(self.guidance(low_level), size))
        mlp_input = self.input_norm(torch.cat(inputs, dim=1))
        return per_patch_mlp(
            mlp_input, params, hidden_channels=self.rep_channels, num_classes=self.num_classes
        )
