r"""Diagonal Gaussians, the VAE's code distributions: sampling by reparameterization,
the log density and the KL divergence to $\mathcal{N}(0, I)$.

$q = \mathcal{N}(\mu, \operatorname{diag} \sigma^2)$ is given by $\mu$ and
$\log \sigma^2$ ("logvar"), both ``(..., k)``. Every value is in nats, summed over the
last dimension. Taught in ``notebooks/03_vae.ipynb``, sections "The KL term in closed
form" and "The reparameterization trick"; :mod:`gmlib.vae` re-exports these names.
"""

from __future__ import annotations

import math

import torch

from .checks import float_tensor, positive_int

LOG_2PI = math.log(2 * math.pi)


def _check_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> None:
    float_tensor(mu, "mu")
    float_tensor(logvar, "logvar")
    if mu.shape != logvar.shape or mu.ndim < 1:
        raise ValueError(
            "mu and logvar must have the same shape (..., k), "
            f"got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        )


def reparameterize(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    num_samples: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""$z = \mu + \sigma \odot \varepsilon$ with $\varepsilon \sim \mathcal{N}(0, I)$
    and $\sigma = \exp(\tfrac12 \log \sigma^2)$.

    The randomness sits in $\varepsilon$, so $z$ is a differentiable function of $\mu$
    and $\log \sigma^2$. ``mu`` and ``logvar`` are ``(..., k)``; with ``num_samples=S``
    the result is ``(S, ..., k)``, else the shape of ``mu``.
    """
    _check_gaussian(mu, logvar)
    shape = (
        mu.shape
        if num_samples is None
        else (positive_int(num_samples, "num_samples"), *mu.shape)
    )
    eps = torch.randn(shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_normal(
    mu: torch.Tensor, logvar: torch.Tensor, *, per_dim: bool = False
) -> torch.Tensor:
    r"""$\mathrm{KL}(\mathcal{N}(\mu, \operatorname{diag}\sigma^2) \,\|\,
    \mathcal{N}(0, I)) = \tfrac12 \sum_i (\mu_i^2 + \sigma_i^2 - \log \sigma_i^2 - 1)$.

    Nats, summed over the last dimension: ``(..., k) -> (...)``, or ``(..., k)`` with
    ``per_dim=True``. Always $\ge 0$; the VAE's loss *adds* it. (The same number
    is often written $-\tfrac12 \sum (1 + \log \sigma^2 - \mu^2 - \sigma^2)$.)
    """
    _check_gaussian(mu, logvar)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)
    return kl if per_dim else kl.sum(-1)


def log_normal(
    z: torch.Tensor, mu: torch.Tensor | float = 0.0, logvar: torch.Tensor | float = 0.0
) -> torch.Tensor:
    r"""$\log \mathcal{N}(z; \mu, \operatorname{diag} \sigma^2)$, nats, summed over the
    last dimension (``(..., k) -> (...)``); the defaults give the prior
    $\mathcal{N}(0, I)$. ``mu`` and ``logvar`` broadcast against ``z``."""
    float_tensor(z, "z")
    if z.ndim < 1:
        raise ValueError("z must have a last dimension (..., k), got a 0-d tensor")
    mu = torch.as_tensor(mu, dtype=z.dtype, device=z.device)
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    for name, t in (("mu", mu), ("logvar", logvar)):
        try:
            torch.broadcast_shapes(z.shape, t.shape)
        except RuntimeError:
            raise ValueError(
                f"{name} {tuple(t.shape)} does not broadcast against z {tuple(z.shape)}"
            ) from None
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)
