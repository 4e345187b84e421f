"""A small U-Net noise predictor for diffusion models: ``eps = model(x_t, t[, y])``.

Two resolutions below the input (28 -> 14 -> 7 for Fashion-MNIST), residual blocks with
GroupNorm and SiLU, a sinusoidal time embedding added inside every block, skip
connections from each encoder level to the decoder level of the same size, and, with
``num_classes``, a learned class embedding (index ``num_classes`` is the "no class" of
classifier-free guidance). Taught in ``notebooks/05_diffusion.ipynb``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of integer timesteps, as in transformers: ``(B,) -> (B,
    dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResBlock(nn.Module):
    """norm, SiLU, conv; add the time embedding; norm, SiLU, conv; plus the input."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.block1 = nn.Sequential(
            _norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, 1, 1)
        )
        self.emb = nn.Linear(emb_dim, c_out)
        self.block2 = nn.Sequential(
            _norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, 1, 1)
        )
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x) + self.emb(emb)[:, :, None, None]
        return self.block2(h) + self.skip(x)


class UNet(nn.Module):
    """``UNet(channels=32)``: ``(B, C, H, W)`` images (H, W divisible by 4) and ``(B,)``
    integer timesteps (and ``(B,)`` labels with ``num_classes``) -> predicted noise of
    the image's shape."""

    def __init__(
        self,
        *,
        image_channels: int = 1,
        channels: int = 32,
        num_classes: int | None = None,
    ):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an int >= 1, got {channels!r}")
        c, e = channels, 4 * channels
        self.channels, self.num_classes = c, num_classes
        self.time = nn.Sequential(nn.Linear(c, e), nn.SiLU(), nn.Linear(e, e))
        self.label = nn.Embedding(num_classes + 1, e) if num_classes else None
        self.inp = nn.Conv2d(image_channels, c, 3, 1, 1)
        self.down1 = ResBlock(c, c, e)  # full size
        self.pool1 = nn.Conv2d(c, c, 3, 2, 1)  # H -> H/2
        self.down2 = ResBlock(c, 2 * c, e)
        self.pool2 = nn.Conv2d(2 * c, 2 * c, 3, 2, 1)  # H/2 -> H/4
        self.mid = ResBlock(2 * c, 2 * c, e)
        self.up2 = ResBlock(4 * c, 2 * c, e)  # after H/4 -> H/2, with the skip
        self.up1 = ResBlock(3 * c, c, e)  # after H/2 -> H, with the skip
        self.out = nn.Sequential(
            _norm(c), nn.SiLU(), nn.Conv2d(c, image_channels, 3, 1, 1)
        )

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        if x.ndim != 4 or x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(
                f"expected images (B, C, H, W) with H, W divisible by 4, got {x.shape}"
            )
        emb = self.time(timestep_embedding(t, self.channels).to(x.dtype))
        if self.label is not None:
            if y is None:
                y = torch.full_like(t, self.num_classes)  # unconditional
            emb = emb + self.label(y)
        elif y is not None:
            raise ValueError("this U-Net has no classes (num_classes=None)")
        h1 = self.down1(self.inp(x), emb)  # (B, c, H, W)
        h2 = self.down2(self.pool1(h1), emb)  # (B, 2c, H/2, W/2)
        h = self.mid(self.pool2(h2), emb)  # (B, 2c, H/4, W/4)
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.up2(torch.cat([h, h2], 1), emb)  # (B, 2c, H/2, W/2)
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.up1(torch.cat([h, h1], 1), emb)  # (B, c, H, W)
        return self.out(h)


class MLPDenoiser(nn.Module):
    """A noise predictor for points: ``(B, dim)`` and ``(B,)`` timesteps -> ``(B,
    dim)``.

    A fully connected network whose hidden layers each see the sinusoidal time
    embedding, for 2-D toys where the true score is known."""

    def __init__(self, *, dim: int = 2, hidden: int = 128, layers: int = 3):
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden), ("layers", layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.hidden = hidden
        self.time = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU())
        self.inp = nn.Linear(dim, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.inp.in_features:
            raise ValueError(
                f"expected points (B, {self.inp.in_features}), got {tuple(x.shape)}"
            )
        e = self.time(timestep_embedding(t, self.hidden).to(x.dtype))
        h = self.inp(x)
        for layer in self.layers:
            h = h + layer(F.silu(h + e))  # residual, with the time added at every layer
        return self.out(F.silu(h))
