"""The paper's architectural skeleton (Figure 10): ConvNet encoder and UpsampleNet decoder.

Follows docs/method.md, "The paper's architecture", which reproduces the paper's Table 4
parameter counts exactly:

* ``ConvBlock`` = conv 3x3 (stride 1, pad 1) -> MaxPool 2 (where a pool falls) -> Mish -> BatchNorm.
* Encoder: ``depth`` ConvBlocks (channels -> F, then F -> F), pools evenly spaced; flatten ->
  LayerNorm -> Linear 256 -> Mish -> Linear 128 -> Mish -> Linear out -> Mish.
* Decoder: Linear in -> 128 -> 256 -> flattened feature map (Mish after each) -> ``depth - 1``
  ConvBlocks F -> F with bilinear x2 upsampling at the mirrored pool positions -> a ConvBlock
  F -> channels -> a last ConvBlock channels -> channels that first resizes to the image size
  (e.g. 24 -> 28 for MNIST) -> sigmoid.
* Xavier (Glorot) initialisation of every conv and linear weight, zero biases.

One deviation by default (``output_block="conv"``): the last block is conv 3x3 -> sigmoid,
without the paper's Mish -> BatchNorm before the sigmoid. In training, that BatchNorm fixes the
mean and standard deviation of every batch's pre-sigmoid map to its two affine parameters
(β, γ, starting at 0 and 1), so the output cannot reach MNIST's black background until Adam has
moved them by several units, thousands of steps at the paper's learning rate; the reconstruction
error then has a floor far above what the decoder could reach (docs/method.md, "Deviations").
``output_block="paper"`` keeps the paper's block and its Table 4 parameter count (2 × channels
more parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import InvalidValueError, ShapeError

__all__ = [
    "PAPER_PARAMETER_COUNTS",
    "PRESETS",
    "ConvBlock",
    "ConvDecoder",
    "ConvEncoder",
    "OutputBlock",
    "Preset",
    "pool_positions",
]

OutputBlock = Literal["conv", "paper"]


@dataclass(frozen=True)
class Preset:
    """An architecture size: the paper's (Table 3, corrected by Table 4's counts; docs/method.md), plus
    ``scene``, ``pendulum`` and ``shapes``: the small one for the offline data sets with known
    causes, with n = their number of factors (5, 4, 5)."""

    name: str
    depth: int
    n: int
    unit_size: int
    filters: int
    pools: int
    image_size: int
    channels: int
    dataset: str


# fmt: off
PRESETS: dict[str, Preset] = {
    "S":        Preset("S",        depth=6,  n=6,  unit_size=1, filters=32,  pools=3, image_size=28,  channels=1, dataset="mnist"),
    "Standard": Preset("Standard", depth=12, n=12, unit_size=1, filters=32,  pools=3, image_size=28,  channels=1, dataset="mnist"),
    "S4":       Preset("S4",       depth=6,  n=6,  unit_size=4, filters=32,  pools=3, image_size=28,  channels=1, dataset="mnist"),
    "v32":      Preset("v32",      depth=16, n=32, unit_size=1, filters=100, pools=7, image_size=128, channels=3, dataset="celeba"),
    "v324":     Preset("v324",     depth=16, n=32, unit_size=4, filters=100, pools=7, image_size=128, channels=3, dataset="celeba"),
    "scene":    Preset("scene",    depth=4,  n=5,  unit_size=1, filters=16,  pools=3, image_size=28,  channels=1, dataset="scene"),
    "pendulum": Preset("pendulum", depth=4,  n=4,  unit_size=1, filters=16,  pools=3, image_size=28,  channels=1, dataset="pendulum"),
    "shapes":   Preset("shapes",   depth=4,  n=5,  unit_size=1, filters=16,  pools=3, image_size=28,  channels=1, dataset="shapes"),
}

# The paper's Table 4: trainable parameters of (family, preset, variant). The CelebA X counts hold
# with fixed gates (learn_gates=False): those runs did not learn the gate logits.
PAPER_PARAMETER_COUNTS: dict[tuple[str, str, str], int] = {
    ("AE", "S", "plain"): 309_973,
    ("AE", "S", "X"): 310_984,
    ("AE", "S4", "X"): 313_936,
    ("AE", "Standard", "plain"): 423_259,
    ("AE", "Standard", "X"): 425_677,
    ("AE", "v32", "plain"): 2_840_827,
    ("AE", "v32", "X"): 2_850_299,
    ("AE", "v324", "X"): 2_878_523,
}
# fmt: on


def pool_positions(depth: int, pools: int) -> set[int]:
    """Indices of the blocks (0-based) followed by a pool: ``pools`` of ``depth``, evenly spaced."""
    if not 0 <= pools <= depth:
        raise InvalidValueError(f"pools must lie in [0, depth={depth}]; got {pools}")
    return {round((k + 1) * depth / pools) - 1 for k in range(pools)}


class ConvBlock(nn.Sequential):
    """conv 3x3 -> (MaxPool 2) -> Mish -> BatchNorm."""

    def __init__(self, c_in: int, c_out: int, pool: bool = False) -> None:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        layers += [nn.Mish(), nn.BatchNorm2d(c_out)]
        super().__init__(*layers)


def _xavier(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _feature_size(image_size: int, pools: int) -> int:
    size = image_size
    for _ in range(pools):
        size //= 2
    if size < 1:
        raise InvalidValueError(f"{pools} pools reduce a {image_size}px image below 1 pixel")
    return size


class ConvEncoder(nn.Module):
    """The skeleton's ConvNet: ``(B, channels, H, H) -> (B, out_features)``.

    ``out_activation=False`` drops the final Mish (stochastic encoders emit an unconstrained
    ``(mean, logvar)``); it has no parameters, so counts do not change.
    """

    def __init__(
        self,
        out_features: int,
        *,
        channels: int,
        image_size: int,
        filters: int,
        depth: int,
        pools: int,
        out_activation: bool = True,
    ) -> None:
        super().__init__()
        where = pool_positions(depth, pools)
        self.image_size, self.channels = image_size, channels
        self.convs = nn.Sequential(
            *(ConvBlock(channels if i == 0 else filters, filters, i in where) for i in range(depth))
        )
        side = _feature_size(image_size, pools)
        flat = filters * side * side
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.LayerNorm(flat),
            nn.Linear(flat, 256),
            nn.Mish(),
            nn.Linear(256, 128),
            nn.Mish(),
            nn.Linear(128, out_features),
            nn.Mish() if out_activation else nn.Identity(),
        )
        _xavier(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.convs(x))


class ConvDecoder(nn.Module):
    """The skeleton's UpsampleNet: ``(B, in_features) -> (B, channels, H, H)`` in ``[0, 1]``.

    ``output_block``: ``"conv"`` (default) ends in conv 3x3 -> sigmoid; ``"paper"`` in the
    paper's ConvBlock (conv -> Mish -> BatchNorm) -> sigmoid, which reproduces Table 4's counts
    but caps what the output can reach early in training (see the module docstring).
    """

    def __init__(
        self,
        in_features: int,
        *,
        channels: int,
        image_size: int,
        filters: int,
        depth: int,
        pools: int,
        output_block: OutputBlock = "conv",
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.filters, self.image_size = filters, image_size
        self.side = _feature_size(image_size, pools)
        flat = filters * self.side * self.side
        self.dense = nn.Sequential(
            nn.Linear(in_features, 128),
            nn.Mish(),
            nn.Linear(128, 256),
            nn.Mish(),
            nn.Linear(256, flat),
            nn.Mish(),
        )
        where = pool_positions(depth, pools)
        # decoder block j mirrors encoder block depth-1-j; upsample before it if that one pooled
        self.upsample_before = [depth - 1 - j in where for j in range(depth)]
        self.blocks = nn.ModuleList(
            ConvBlock(filters, filters if j < depth - 1 else channels) for j in range(depth)
        )
        if output_block == "paper":
            self.out_block: nn.Module = ConvBlock(channels, channels)
        elif output_block == "conv":
            self.out_block = nn.Conv2d(channels, channels, 3, padding=1)
        else:
            raise InvalidValueError(f'output_block must be "conv" or "paper"; got {output_block!r}')
        self.output_block = output_block
        _xavier(self)

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.in_features:
            raise ShapeError(
                f"decoder input must be (B, {self.in_features}); got {tuple(z.shape)}"
                + (
                    " (an XBlock with unit_size > 1 needs a decoder taking n * unit_size inputs)"
                    if z.ndim == 2 and z.shape[1] % self.in_features == 0
                    else ""
                )
            )
        h = self.start(z)
        for j, (up, block) in enumerate(zip(self.upsample_before, self.blocks)):
            if up:
                h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = block(self.before_block(j, h, z))
        if h.shape[-1] != self.image_size:
            h = F.interpolate(
                h, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
            )
        return torch.sigmoid(self.out_block(h))

    def start(self, z: Tensor) -> Tensor:
        """The first feature map ``(B, F, s, s)`` from the latent (dense layers here)."""
        return self.dense(z).view(z.shape[0], self.filters, self.side, self.side)

    def before_block(self, j: int, h: Tensor, z: Tensor) -> Tensor:
        """Hook applied to the input of decoder block ``j`` (identity here)."""
        return h
