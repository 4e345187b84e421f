r"""The variational bound of a diffusion model on 8-bit images, in nats and bits/dim.

With the reverse variances fixed to $\sigma_t^2 = \tilde\beta_t$, the negative ELBO of
Ho et al. (2020) is

$$
L = \underbrace{\mathrm{KL}(q(x_T \mid x_0) \,\|\, \mathcal{N}(0, I))}_{\text{prior}}
  + \underbrace{\sum_{t=2}^{T} \mathrm{KL}\bigl(q(x_{t-1} \mid x_t, x_0) \,\|\,
    p_\theta(x_{t-1} \mid x_t)\bigr)}_{\text{diffusion}}
  \underbrace{- \log p_\theta(x_0 \mid x_1)}_{\text{decoder}},
$$

each KL a Gaussian one with equal variances, and the decoder a Gaussian with mean
$\hat x_0(x_1)$ and variance $\beta_1$, discretized to the 256 levels of the data
(bins of width $2/255$ on $[-1, 1]$, the end bins open). It is an upper bound on
$-\log p_\theta(x_0)$ of the discrete image, so bits/dim compare with exact likelihoods
(chapter 02) and other bounds (chapter 03). The simplified training loss is not this
bound; this evaluates a trained noise predictor under it, for the comparison of the
model families' likelihoods.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import (
    describe,
    finite_number,
    float_tensor,
    is_integer_tensor,
    labels,
    positive_int,
    within,
)
from .diffusion import EpsModel, Schedule
from .gaussians import kl_normal


def discretized_gaussian_log_prob(
    x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | float
) -> torch.Tensor:
    """Elementwise $\\log P(\\text{bin of } x)$ under $\\mathcal{N}(\\text{mean},
    \\text{std}^2)$ for ``x`` on the 256 levels of $[-1, 1]$ (``2 k / 255 - 1``); the
    first and the last bin extend to infinity. Computed in float64."""
    within(float_tensor(x, "x"), "x", -1, 1)
    float_tensor(mean, "mean")
    if isinstance(std, torch.Tensor):
        if not bool((float_tensor(std, "std") > 0).all() and std.isfinite().all()):
            raise ValueError("std must be finite and > 0 everywhere")
    else:
        finite_number(std, "std", minimum=0, strict=True)
    try:
        torch.broadcast_shapes(x.shape, mean.shape, torch.as_tensor(std).shape)
    except RuntimeError:
        raise ValueError(
            f"x {tuple(x.shape)}, mean {tuple(mean.shape)} and std must broadcast "
            "together"
        ) from None
    x, mean = x.double(), mean.double()
    std = torch.as_tensor(std, dtype=torch.float64, device=x.device)
    normal = torch.distributions.Normal(mean, std)
    half = 1.0 / 255
    upper = torch.where(x > 1 - half, torch.ones_like(x), normal.cdf(x + half))
    lower = torch.where(x < -1 + half, torch.zeros_like(x), normal.cdf(x - half))
    # far in a tail both CDFs round to the same value: fall back on the density
    # times the bin width, which is what the difference tends to
    mass = upper - lower
    density = normal.log_prob(x) + math.log(2 * half)
    return torch.where(mass > 1e-12, mass.clamp_min(1e-300).log(), density)


def _input_dtype(model: EpsModel) -> torch.dtype:
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.dtype
    return torch.float64


def _eps(model: EpsModel, x_t: torch.Tensor, t: torch.Tensor, y, dtype) -> torch.Tensor:
    out = model(x_t.to(dtype), t) if y is None else model(x_t.to(dtype), t, y)
    return out.double()


@torch.no_grad()
def nll_bound(
    model: EpsModel,
    schedule: Schedule,
    images: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    timesteps: int | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The negative ELBO of uint8 ``images`` ``(B, C, H, W)`` under the noise predictor
    ``model`` (``model(x_t, t)``, or ``model(x_t, t, y)`` with labels ``y``; a
    class-conditional U-Net without ``y`` is its unconditional model).

    Returns per-image tensors ``(B,)`` in nats: ``"prior"``, ``"diffusion"``,
    ``"decoder"``, ``"total"``, and ``"bits_per_dim"``. ``timesteps=None`` sums all
    ``T - 1`` KL terms (``T - 1`` network passes per image, one draw of ``x_t`` each);
    an int ``k`` draws ``k`` steps per image uniformly and scales their mean by
    ``T - 1``, an unbiased estimate for ``k`` passes. Noise comes from ``generator``
    (on the images' device, which is where the computation runs).
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, torch.Tensor) else type(images)
        raise TypeError(f"images must be uint8 (0..255) images, got {got}")
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            f"images must be (B, C, H, W) with B >= 1, got {tuple(images.shape)}"
        )
    if y is not None and (not isinstance(y, torch.Tensor) or y.shape != (len(images),)):
        raise ValueError(
            f"y must be a ({len(images)},) tensor of labels, got {y!r:.60}"
        )
    if y is not None:
        if not is_integer_tensor(y):
            raise TypeError(f"y must be integer labels, got {describe(y)}")
        num_classes = getattr(model, "num_classes", None)
        if isinstance(num_classes, int) and not isinstance(num_classes, bool):
            labels(y, num_classes=num_classes + 1)  # the last is the null class
    if not callable(model):
        raise TypeError(f"model must be a noise predictor, got {type(model).__name__}")
    if not isinstance(schedule, Schedule):
        raise TypeError(
            f"schedule must be a gm.diffusion.Schedule, got {type(schedule).__name__}"
        )
    T = schedule.T
    if T < 2:
        raise ValueError("the bound needs a schedule with T >= 2 steps")
    if timesteps is not None:
        timesteps = positive_int(timesteps, "timesteps")
    dev, dtype = images.device, _input_dtype(model)
    x0 = images.double() / 255 * 2 - 1
    b, dims = len(x0), tuple(range(1, x0.ndim))

    def noisy(t: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x0.shape, generator=generator, device=dev, dtype=x0.dtype)
        return schedule.q_sample(x0, t, noise)

    a_T = float(schedule.alpha_bars[-1])
    mean_T = math.sqrt(a_T) * x0.flatten(1)  # q(x_T | x0), against the prior N(0, I)
    prior = kl_normal(mean_T, torch.full_like(mean_T, math.log(1 - a_T)))

    def kl_term(t: torch.Tensor) -> torch.Tensor:  # (B,): KL at code steps t >= 1
        x_t = noisy(t)
        x0_hat = schedule.predict_x0(x_t, t, _eps(model, x_t, t, y, dtype))
        mu_true, var = schedule.posterior(x_t, x0, t)
        mu_model, _ = schedule.posterior(x_t, x0_hat, t)
        return ((mu_true - mu_model) ** 2 / (2 * var)).sum(dims)

    diffusion = torch.zeros(b, dtype=torch.float64, device=dev)
    if timesteps is None:
        for step in range(1, T):
            diffusion += kl_term(torch.full((b,), step, device=dev, dtype=torch.long))
    else:
        for _ in range(timesteps):
            t = torch.randint(1, T, (b,), generator=generator, device=dev)
            diffusion += kl_term(t) * (T - 1) / timesteps

    first = torch.zeros(b, device=dev, dtype=torch.long)
    x_1 = noisy(first)
    mean = schedule.predict_x0(x_1, first, _eps(model, x_1, first, y, dtype))
    std = math.sqrt(float(schedule.betas[0]))
    decoder = -discretized_gaussian_log_prob(x0, mean, std).sum(dims)

    total = prior + diffusion + decoder
    return {
        "prior": prior,
        "diffusion": diffusion,
        "decoder": decoder,
        "total": total,
        "bits_per_dim": total / (x0[0].numel() * math.log(2)),
    }
