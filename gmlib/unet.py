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

from .checks import describe, labels, positive_int


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of integer timesteps, as in transformers: ``(B,) -> (B,
    dim)`` (an odd ``dim`` ends with a column of zeros)."""
    _check_t(t)
    dim = positive_int(dim, "dim")
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    features = [angles.sin(), angles.cos()]
    if dim % 2:
        features.append(angles.new_zeros(len(t), 1))
    return torch.cat(features, dim=1)


def _check_t(t: torch.Tensor, batch: int | None = None) -> None:
    """``t`` a tensor of timesteps ``(B,)``, ``B = batch`` if given."""
    if (
        not isinstance(t, torch.Tensor)
        or t.dtype == torch.bool
        or t.is_complex()
        or t.ndim != 1
    ):
        raise TypeError(f"t must be a (B,) tensor of timesteps, got {describe(t)}")
    if batch is not None and len(t) != batch:
        raise ValueError(f"got {len(t)} timesteps for {batch} inputs")


def _check_input(x, what: str, shape: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"expected float {what} {shape}, got {describe(x)}")


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
        positive_int(channels, "channels")
        positive_int(image_channels, "image_channels")
        if num_classes is not None:
            positive_int(num_classes, "num_classes")
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
        _check_input(x, "images", "(B, C, H, W)")
        if x.ndim != 4 or x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(
                f"expected images (B, C, H, W) with H, W divisible by 4, got {x.shape}"
            )
        if x.shape[1] != self.inp.in_channels:
            raise ValueError(
                f"expected images (B, {self.inp.in_channels}, H, W), got "
                f"{tuple(x.shape)}"
            )
        # GroupNorm refuses to normalize a single value: at H/4 x W/4 a group holds
        # B * (channels per group) * H/4 * W/4 of them
        per_group = 2 * self.channels // math.gcd(8, 2 * self.channels)
        if len(x) * per_group * (x.shape[2] // 4) * (x.shape[3] // 4) == 1:
            raise ValueError(
                f"one image of {x.shape[2]} x {x.shape[3]} is too small for this "
                "U-Net: its H/4 x W/4 level needs 2 or more values per GroupNorm group "
                "(use larger images, more channels or a larger batch)"
            )
        _check_t(t, len(x))
        x = x.to(self.inp.weight.dtype)
        emb = self.time(timestep_embedding(t, self.channels).to(x.dtype))
        if self.label is not None:
            if y is None:
                y = torch.full((len(x),), self.num_classes, device=x.device)  # no class
            # the labels' values are read only on the CPU (free there): on an
            # accelerator that would wait for the device at every step
            on_cpu = not isinstance(y, torch.Tensor) or y.device.type == "cpu"
            labels(
                y, batch=len(x), num_classes=self.num_classes + 1 if on_cpu else None
            )
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
            positive_int(value, name)
        self.hidden = hidden
        self.time = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU())
        self.inp = nn.Linear(dim, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        _check_input(x, "points", f"(B, {self.inp.in_features})")
        if x.ndim != 2 or x.shape[1] != self.inp.in_features:
            raise ValueError(
                f"expected points (B, {self.inp.in_features}), got {tuple(x.shape)}"
            )
        _check_t(t, len(x))
        x = x.to(self.inp.weight.dtype)
        e = self.time(timestep_embedding(t, self.hidden).to(x.dtype))
        h = self.inp(x)
        for layer in self.layers:
            h = h + layer(F.silu(h + e))  # residual, with the time added at every layer
        return self.out(F.silu(h))
