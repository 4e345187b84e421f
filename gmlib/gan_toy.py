"""The toy GAN problem: 2-D data on a ring of Gaussians and small fully connected
networks, small enough to train live and to draw the discriminator's whole decision
surface. Trained with :func:`gmlib.gan.gan_step`; :mod:`gmlib.widgets` drives it
interactively. Taught in ``notebooks/04_gan.ipynb``, "A toy GAN, trained live".
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import describe, finite_number, positive_int


def ring_centers(modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """``(modes, 2)``: the centres of a ring of Gaussians."""
    angles = torch.arange(modes) * (2 * math.pi / positive_int(modes, "modes"))
    radius = finite_number(radius, "radius", minimum=0, strict=True)
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def ring_of_gaussians(
    n: int,
    *,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``(n, 2)`` points from an equal mixture of Gaussians on a ring (``std >= 0``;
    0 puts every point on a centre)."""
    n = positive_int(n, "n")
    std = finite_number(std, "std", minimum=0)
    centers = ring_centers(modes, radius)
    which = torch.randint(modes, (n,), generator=generator)
    return centers[which] + std * torch.randn(n, 2, generator=generator)


def mode_coverage(
    samples: torch.Tensor, centers: torch.Tensor, *, std: float = 0.05
) -> dict[str, float]:
    """How well 2-D ``samples`` cover the modes at ``centers``.

    ``"modes"``: how many modes hold at least 1% of the samples within 3 std;
    ``"quality"``: the share of samples within 3 std of some mode; ``"distance"``: the
    mean distance from a sample to its nearest centre. NaN samples (a diverged
    generator) are near no mode: they count against ``quality`` and make ``distance``
    NaN.
    """
    for name, x in (("samples", samples), ("centers", centers)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a float tensor (N, 2), got {describe(x)}")
    if samples.ndim != 2 or samples.shape[1] != 2 or len(samples) == 0:
        raise ValueError(f"expected samples (N, 2), got {tuple(samples.shape)}")
    if centers.ndim != 2 or centers.shape[1] != 2 or len(centers) == 0:
        raise ValueError(
            f"expected centers (modes, 2), e.g. ring_centers(), "
            f"got {tuple(centers.shape)}"
        )
    std = finite_number(std, "std", minimum=0, strict=True)
    dist = torch.cdist(samples.float(), centers.float())  # (N, modes)
    nearest, which = dist.min(1)
    close = nearest < 3 * std
    counts = torch.bincount(which[close], minlength=len(centers))
    return {
        "modes": int((counts >= 0.01 * len(samples)).sum()),
        "quality": float(close.float().mean()),
        "distance": float(nearest.mean()),
    }


def _points(x, name: str, dim: int) -> torch.Tensor:
    """``x`` if it is a float tensor ``(B, dim)``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"expected float {name} (B, {dim}), got {describe(x)}")
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected {name} of shape (B, {dim}), got {tuple(x.shape)}")
    return x


class ToyGenerator(nn.Module):
    """Noise ``(B, noise_dim)`` -> points ``(B, 2)``: an MLP with ReLU."""

    def __init__(self, *, noise_dim: int = 2, hidden: int = 128, layers: int = 3):
        super().__init__()
        self.latent_dim = positive_int(noise_dim, "noise_dim")
        layers = positive_int(layers, "layers")
        dims = [noise_dim] + [positive_int(hidden, "hidden")] * layers
        body: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            body += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*body, nn.Linear(dims[-1], 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(_points(z, "noise", self.latent_dim))


class ToyDiscriminator(nn.Module):
    """Points ``(B, 2)`` -> logits ``(B,)``: an MLP with LeakyReLU."""

    def __init__(self, *, hidden: int = 128, layers: int = 3):
        super().__init__()
        dims = [2] + [positive_int(hidden, "hidden")] * positive_int(layers, "layers")
        body: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            body += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*body, nn.Linear(dims[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(_points(x, "points", 2)).flatten()
