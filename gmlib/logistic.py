r"""The discretized logistic mixture likelihood of PixelCNN++ (Salimans et al., 2017).

A softmax over 256 levels needs 256 numbers per pixel and learns from scratch that level
127 is close to level 128. PixelCNN++ instead puts a mixture of $K$ logistic
distributions on the pixel scale $[-1, 1]$ and gives level $x$ (at $x' = 2x/(L-1) - 1$,
bins of width $\Delta = 2/(L-1)$) the mass of its bin:

$$P(x) = \sum_k \pi_k \left[\sigma\!\left(\frac{x' + \Delta/2 - \mu_k}{s_k}\right)
        - \sigma\!\left(\frac{x' - \Delta/2 - \mu_k}{s_k}\right)\right],$$

with the first bin extended down to $-\infty$ and the last up to $+\infty$, so the $L$
probabilities sum to one. $3K$ numbers per pixel, whatever $L$. Taught in
``notebooks/02_pixelcnn.ipynb``.

The difference of sigmoids is computed in log space without cancellation, through
$\sigma(a) - \sigma(b) = \sigma(a)\,\sigma(-b)\,(1 - e^{-(a-b)})$ for $a > b$; that is
exact for every mean and scale, so no midpoint-density fallback is needed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .checks import describe, float_tensor, is_integer_tensor, positive_int

MIN_LOG_SCALE = -7.0  # PixelCNN++ clamps log-scales here when they come from a network


def _component_log_prob(
    x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor, levels: int
) -> torch.Tensor:
    """log P(x) of each logistic component; all arguments broadcast together."""
    half = 1 / (levels - 1)  # half a bin on the [-1, 1] scale
    centre = x.to(means.dtype) * (2 * half) - 1  # x' in [-1, 1]
    inv_s = torch.exp(-log_scales)
    upper = inv_s * (centre - means + half)  # a
    lower = inv_s * (centre - means - half)  # b = a - 2 half / s
    log_cdf_upper = F.logsigmoid(upper)  # log sigma(a): all mass below the bin's top
    log_sf_lower = F.logsigmoid(-lower)  # log (1 - sigma(b)): all mass above its bottom
    log_width = torch.log(-torch.expm1(-(2 * half) * inv_s))  # log(1 - e^-(a-b))
    middle = log_cdf_upper + log_sf_lower + log_width
    return torch.where(
        x == 0, log_cdf_upper, torch.where(x == levels - 1, log_sf_lower, middle)
    )


def _check_x(x: torch.Tensor, levels: int) -> None:
    positive_int(levels, "levels", minimum=2)
    if not is_integer_tensor(x):
        raise TypeError(f"x must be an integer tensor of levels, got {describe(x)}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= levels):
        raise ValueError(
            f"levels must be in 0..{levels - 1}, got values in "
            f"{int(x.min())}..{int(x.max())}"
        )


def discretized_logistic_log_prob(
    x: torch.Tensor,
    means: torch.Tensor,
    log_scales: torch.Tensor,
    *,
    levels: int = 256,
    logit_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""$\log P(x)$ of levels ``x`` ``(B, 1, H, W)`` under a mixture of ``K``
    discretized logistics.

    ``means``, ``log_scales`` and ``logit_weights`` (unnormalized log mixture weights;
    ``None`` means equal weights) are ``(B, K, H, W)``, on the [-1, 1] scale. Returns
    ``(B, 1, H, W)``.
    """
    _check_x(x, levels)
    float_tensor(means, "means")
    float_tensor(log_scales, "log_scales")
    if means.shape != log_scales.shape or means.ndim != 4 or means.shape[1] < 1:
        raise ValueError(
            "means and log_scales must both be (B, K, H, W) with K >= 1, got "
            f"{tuple(means.shape)} and {tuple(log_scales.shape)}"
        )
    if logit_weights is not None:
        float_tensor(logit_weights, "logit_weights")
        if logit_weights.shape != means.shape:
            raise ValueError(
                f"logit_weights must be shaped like means {tuple(means.shape)}, "
                f"got {tuple(logit_weights.shape)}"
            )
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"x must be (B, 1, H, W), got {tuple(x.shape)}")
    b, _, h, w = means.shape
    if (len(x), *x.shape[2:]) != (b, h, w):
        raise ValueError(
            f"x {tuple(x.shape)} and means {tuple(means.shape)} must have the same "
            "B, H and W"
        )
    component = _component_log_prob(x, means, log_scales, levels)  # (B, K, H, W)
    if logit_weights is None:
        log_w = torch.full_like(means, -math.log(means.shape[1]))
    else:
        log_w = F.log_softmax(logit_weights, dim=1)
    return torch.logsumexp(log_w + component, dim=1, keepdim=True)  # (B, 1, H, W)


def split_params(
    params: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A network's ``(B, 3K, H, W)`` output to ``(logit_weights, means, log_scales)``,
    each ``(B, K, H, W)``; log-scales clamped at ``MIN_LOG_SCALE`` as in PixelCNN++."""
    float_tensor(params, "params")
    if params.ndim != 4 or params.shape[1] % 3 or params.shape[1] == 0:
        raise ValueError(
            f"expected mixture parameters (B, 3K, H, W), got {tuple(params.shape)}"
        )
    logit_weights, means, log_scales = params.chunk(3, dim=1)
    return logit_weights, means, log_scales.clamp(min=MIN_LOG_SCALE)


def mixture_log_prob(
    x: torch.Tensor, params: torch.Tensor, *, levels: int = 256
) -> torch.Tensor:
    """``log P(x)`` ``(B, 1, H, W)`` from a head's output ``(B, 3K, H, W)``."""
    logit_weights, means, log_scales = split_params(params)
    return discretized_logistic_log_prob(
        x, means, log_scales, levels=levels, logit_weights=logit_weights
    )


def mixture_log_probs(params: torch.Tensor, *, levels: int = 256) -> torch.Tensor:
    """The log-probability of every level, ``(B, levels, H, W)``, from a head's
    output ``(B, 3K, H, W)``: usable as the logits of a categorical distribution."""
    _check_x(torch.zeros(0, dtype=torch.long), levels)
    logit_weights, means, log_scales = (p[:, None] for p in split_params(params))
    x = torch.arange(levels, device=params.device).view(1, levels, 1, 1, 1)
    component = _component_log_prob(x, means, log_scales, levels)  # (B, L, K, H, W)
    log_w = F.log_softmax(logit_weights, dim=2)  # (B, 1, K, H, W)
    return torch.logsumexp(log_w + component, dim=2)  # (B, L, H, W)
