r"""Denoising diffusion models: destroy data with Gaussian noise step by step, then
learn to undo it.

The forward process $q(x_t \mid x_{t-1}) = \mathcal{N}(\sqrt{1 - \beta_t}\, x_{t-1},
\beta_t I)$ has the closed-form marginal
$q(x_t \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\, x_0, (1 - \bar\alpha_t) I)$ with
$\bar\alpha_t = \prod_{s \le t} (1 - \beta_s)$. A network $\epsilon_\theta(x_t, t)$
predicts the noise; sampling runs the reverse chain (DDPM) or a shorter deterministic
one (DDIM). Timesteps are **0-based**: ``t`` in ``0 .. T - 1`` is the paper's step
``t + 1``, so ``alpha_bars[t]`` is $\bar\alpha_{t+1}$. Images live in $[-1, 1]$
(:func:`gmlib.gan.to_signed`). The U-Net is in :mod:`gmlib.unet`. Taught in
``notebooks/05_diffusion.ipynb``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .checks import describe, finite_number, float_tensor, labels, positive_int

EpsModel = Callable[..., torch.Tensor]  # eps_model(x_t, t) or eps_model(x_t, t, y)


class Schedule:
    """The noise schedule: ``betas`` ``(T,)`` and what follows from them, in float64."""

    def __init__(self, betas: torch.Tensor):
        try:
            betas = torch.as_tensor(betas, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                "betas must be a 1-D tensor of numbers in (0, 1), got "
                f"{describe(betas)}"
            ) from None
        if betas.ndim != 1 or len(betas) < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got {betas.shape}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(
                "every beta must lie in (0, 1), got values from "
                f"{float(betas.min()):g} to {float(betas.max()):g}"
            )
        self.betas = betas
        self.alphas = 1 - betas
        self.alpha_bars = torch.cumprod(self.alphas, 0)
        self.T = len(betas)

    @classmethod
    def linear(cls, T: int = 1000, *, beta_start: float = 1e-4, beta_end: float = 0.02):
        """DDPM's schedule (Ho et al., 2020): betas linear from ``beta_start`` to
        ``beta_end``, scaled by 1000 / T so that a shorter chain destroys the data about
        as much as T = 1000 (so T must exceed 1000 * beta_end = 20 by default)."""
        T = positive_int(T, "T")
        beta_start = finite_number(beta_start, "beta_start", minimum=0, strict=True)
        beta_end = finite_number(beta_end, "beta_end", minimum=0, strict=True)
        scale = 1000 / T
        return cls(
            torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64)
        )

    @classmethod
    def cosine(cls, T: int = 1000, *, s: float = 0.008):
        r"""Nichol and Dhariwal's (2021) schedule: $\bar\alpha$ follows
        $\cos^2\bigl(\frac{t/T + s}{1 + s} \frac{\pi}{2}\bigr)$; betas clipped at
        0.999."""
        T = positive_int(T, "T")
        s = finite_number(s, "s", minimum=0)
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(1e-8, 0.999)
        return cls(betas)

    def snr(self) -> torch.Tensor:
        r"""Signal-to-noise ratio of $x_t$, $\bar\alpha_t / (1 - \bar\alpha_t)$:
        ``(T,)``."""
        return self.alpha_bars / (1 - self.alpha_bars)

    def _at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor):
        """``values[t]`` shaped to broadcast against ``like`` ``(B, ...)``."""
        return values.to(like.device)[t].to(like.dtype).view(-1, *[1] * (like.ndim - 1))

    def check_t(self, t: torch.Tensor, batch: int) -> torch.Tensor:
        if not isinstance(t, torch.Tensor) or t.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"t must be an integer tensor of timesteps, got {t!r:.60}")
        if t.shape != (batch,):
            raise ValueError(f"t must have shape ({batch},), got {tuple(t.shape)}")
        if batch and (int(t.min()) < 0 or int(t.max()) >= self.T):
            raise ValueError(
                f"timesteps must lie in 0..{self.T - 1}, got {int(t.min())} to "
                f"{int(t.max())}"
            )
        return t.long()

    def q_sample(
        self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        r"""$x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon$."""
        _check_x(x0, "x0")
        t = self.check_t(t, len(x0))
        noise = torch.randn_like(x0) if noise is None else float_tensor(noise, "noise")
        if noise.shape != x0.shape:
            raise ValueError(f"noise {tuple(noise.shape)} must match x0 {x0.shape}")
        a = self._at(self.alpha_bars, t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def q_step(self, x_prev: torch.Tensor, t: torch.Tensor, noise=None):
        r"""One forward step: $x_t = \sqrt{1 - \beta_t}\, x_{t-1} + \sqrt{\beta_t}\,
        \epsilon$."""
        _check_x(x_prev, "x_prev")
        t = self.check_t(t, len(x_prev))
        noise = (
            torch.randn_like(x_prev) if noise is None else float_tensor(noise, "noise")
        )
        if noise.shape != x_prev.shape:
            raise ValueError(
                f"noise {tuple(noise.shape)} must match x_prev {x_prev.shape}"
            )
        b = self._at(self.betas, t, x_prev)
        return (1 - b).sqrt() * x_prev + b.sqrt() * noise

    def posterior(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor):
        r"""Mean and variance of $q(x_{t-1} \mid x_t, x_0)$:
        $\tilde\mu = \frac{\sqrt{\bar\alpha_{t-1}} \beta_t}{1 - \bar\alpha_t} x_0 +
        \frac{\sqrt{\alpha_t} (1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t} x_t$,
        $\tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t} \beta_t$
        (with $\bar\alpha_{-1} = 1$: at ``t = 0`` the mean is $x_0$, the variance 0)."""
        _check_x(x_t, "x_t")
        float_tensor(x0, "x0")
        if x0.shape != x_t.shape:
            raise ValueError(f"x0 {tuple(x0.shape)} must match x_t {tuple(x_t.shape)}")
        t = self.check_t(t, len(x_t))
        prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bars[:-1]])
        # the coefficients in float64: 1 - alpha_bar in float32 loses ~1e-3 at t = 0
        c0 = prev.sqrt() * self.betas / (1 - self.alpha_bars)
        ct = self.alphas.sqrt() * (1 - prev) / (1 - self.alpha_bars)
        var = (1 - prev) / (1 - self.alpha_bars) * self.betas
        c0[0], ct[0], var[0] = 1.0, 0.0, 0.0  # exact at t = 0: the mean is x0
        mean = self._at(c0, t, x_t) * x0 + self._at(ct, t, x_t) * x_t
        return mean, self._at(var, t, x_t).expand_as(x_t)

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor):
        r"""The clean image implied by a noise prediction:
        $\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\, \epsilon) / \sqrt{\bar\alpha_t}$.
        """
        _check_x(x_t, "x_t")
        float_tensor(eps, "eps")
        if eps.shape != x_t.shape:
            raise ValueError(
                f"eps {tuple(eps.shape)} must match x_t {tuple(x_t.shape)}"
            )
        a = self._at(self.alpha_bars, self.check_t(t, len(x_t)), x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


def _check_x(x, name: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {x!r:.60}")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"{name} must be (B, ...) with B >= 1, got {tuple(x.shape)}")


def _check_schedule(schedule) -> None:
    if not isinstance(schedule, Schedule):
        raise TypeError(
            "schedule must be a gm.diffusion.Schedule (e.g. Schedule.cosine(T)), got "
            f"{type(schedule).__name__}"
        )


def _check_guidance(model, y, batch: int, scale, null_class, *, values: bool):
    """Labels ``y`` ``(batch,)``, the guidance ``scale`` and ``null_class``. With
    ``values``, and a model that says its ``num_classes`` (the U-Net), the labels'
    values too: ``0..num_classes``, the last being the null class."""
    if y is None:
        return
    num_classes = getattr(model, "num_classes", None)
    known = isinstance(num_classes, int) and not isinstance(num_classes, bool)
    labels(y, batch=batch, num_classes=num_classes + 1 if known and values else None)
    finite_number(scale, "scale")
    if null_class is not None:
        positive_int(null_class, "null_class", minimum=0)
        if known and null_class > num_classes:
            raise ValueError(
                f"null_class must be in 0..{num_classes}, got {null_class}"
            )


def loss(
    model: EpsModel,
    schedule: Schedule,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    p_uncond: float = 0.0,
    null_class: int | None = None,
) -> torch.Tensor:
    r"""The simplified DDPM loss $\mathbb{E}_{t, \epsilon} \lVert \epsilon -
    \epsilon_\theta(x_t, t) \rVert^2$, averaged over pixels and the batch.

    ``x`` are images in [0, 1] (as :func:`gmlib.fit` gives them), mapped to [-1, 1];
    ``t`` is uniform over the schedule. With labels ``y``, a share ``p_uncond`` of them
    is replaced by ``null_class`` (classifier-free guidance's unconditional model).
    """
    _check_x(x, "x")
    _check_schedule(schedule)
    finite_number(p_uncond, "p_uncond", minimum=0, maximum=1)
    if y is not None:
        labels(y, batch=len(x))  # the values are the model's to read, per step
        if null_class is not None:
            positive_int(null_class, "null_class", minimum=0)
    x0 = x * 2 - 1
    t = torch.randint(schedule.T, (len(x0),), device=x0.device)
    noise = torch.randn_like(x0)
    x_t = schedule.q_sample(x0, t, noise)
    if y is None:
        eps = model(x_t, t)
    else:
        if p_uncond > 0:
            if null_class is None:
                raise ValueError("p_uncond > 0 needs the null_class index")
            drop = torch.rand(len(y), device=y.device) < p_uncond
            y = torch.where(drop, torch.full_like(y, null_class), y)
        eps = model(x_t, t, y)
    return F.mse_loss(eps.float(), noise.float())


def guided_eps(
    model: EpsModel,
    x_t: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    scale: float = 1.0,
    null_class: int | None = None,
) -> torch.Tensor:
    r"""The noise prediction, with classifier-free guidance when ``y`` is given:
    $\epsilon = \epsilon_\theta(x_t, t, \varnothing) + s\,(\epsilon_\theta(x_t, t, y) -
    \epsilon_\theta(x_t, t, \varnothing))$. Scale 0 is the unconditional model, 1 the
    conditional one, above 1 pushes towards the class (Ho and Salimans, 2022)."""
    if y is None:
        return model(x_t, t)
    labels(y, batch=len(x_t))
    finite_number(scale, "scale")
    if null_class is None:
        raise ValueError(
            "guidance needs the null_class index of the unconditional model"
        )
    if scale == 1:
        return model(x_t, t, y)
    uncond = model(x_t, t, torch.full_like(y, null_class))
    if scale == 0:
        return uncond
    return uncond + scale * (model(x_t, t, y) - uncond)


def _denoised(model, schedule, x, step, y, scale, null_class, clip):
    """Timesteps ``(B,)`` at ``step`` and the clean image the (guided) noise prediction
    implies, clipped to [-1, 1] if ``clip``."""
    t = torch.full((len(x),), step, device=x.device, dtype=torch.long)
    eps = guided_eps(model, x, t, y, scale=scale, null_class=null_class)
    x0 = schedule.predict_x0(x, t, eps)
    return t, x0.clamp(-1, 1) if clip else x0


@torch.no_grad()
def ddpm_sample(
    model: EpsModel,
    schedule: Schedule,
    noise: torch.Tensor,
    *,
    y: torch.Tensor | None = None,
    scale: float = 1.0,
    null_class: int | None = None,
    generator: torch.Generator | None = None,
    clip: bool = True,
) -> torch.Tensor:
    r"""Ancestral sampling through all T steps: $x_{t-1} = \tilde\mu(x_t, \hat x_0) +
    \sqrt{\tilde\beta_t}\, z$ from ``noise`` $= x_T$; returns $x_0$, in [-1, 1] when
    ``clip`` (each $\hat x_0$ is clipped to the data's range; ``clip=False`` for data
    that are not images)."""
    _check_x(noise, "noise")
    _check_schedule(schedule)
    _check_guidance(model, y, len(noise), scale, null_class, values=True)
    x = noise
    for step in reversed(range(schedule.T)):
        t, x0 = _denoised(model, schedule, x, step, y, scale, null_class, clip)
        mean, var = schedule.posterior(x, x0, t)
        if step > 0:
            z = torch.randn(
                x.shape, generator=generator, device=x.device, dtype=x.dtype
            )
            x = mean + var.sqrt() * z
        else:
            x = mean
    return x


def _ddim_times(schedule: Schedule, steps: int | None) -> list[int]:
    """``steps`` timesteps evenly spaced from ``T - 1`` down to 0 (all T if None)."""
    steps = schedule.T if steps is None else positive_int(steps, "steps")
    if steps > schedule.T:
        raise ValueError(f"steps must be at most T = {schedule.T}, got {steps}")
    return torch.linspace(schedule.T - 1, 0, steps).round().long().tolist()


@torch.no_grad()
def ddim_sample(
    model: EpsModel,
    schedule: Schedule,
    noise: torch.Tensor,
    *,
    steps: int | None = None,
    eta: float = 0.0,
    y: torch.Tensor | None = None,
    scale: float = 1.0,
    null_class: int | None = None,
    generator: torch.Generator | None = None,
    clip: bool = True,
) -> torch.Tensor:
    r"""DDIM (Song et al., 2021) on ``steps`` evenly spaced timesteps (all T if None).

    From $\hat x_0$ and $\hat\epsilon$: $x_{s} = \sqrt{\bar\alpha_s}\, \hat x_0 +
    \sqrt{1 - \bar\alpha_s - \sigma^2}\, \hat\epsilon + \sigma z$ with
    $\sigma = \eta \sqrt{(1 - \bar\alpha_s)/(1 - \bar\alpha_t)}
    \sqrt{1 - \bar\alpha_t/\bar\alpha_s}$. ``eta = 0`` is deterministic; ``eta = 1``
    with all steps is DDPM's ancestral update. ``clip`` as in :func:`ddpm_sample`.
    """
    _check_x(noise, "noise")
    _check_schedule(schedule)
    _check_guidance(model, y, len(noise), scale, null_class, values=True)
    times = _ddim_times(schedule, steps)
    finite_number(eta, "eta", minimum=0, maximum=1)
    x = noise
    for i, step in enumerate(times):
        _, x0 = _denoised(model, schedule, x, step, y, scale, null_class, clip)
        a_t = float(schedule.alpha_bars[step])
        a_s = float(schedule.alpha_bars[times[i + 1]]) if i + 1 < len(times) else 1.0
        eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)  # consistent with the clip
        sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
        x = math.sqrt(a_s) * x0 + math.sqrt(max(1 - a_s - sigma**2, 0.0)) * eps
        if sigma > 0:
            z = torch.randn(
                x.shape, generator=generator, device=x.device, dtype=x.dtype
            )
            x = x + sigma * z
    return x


@torch.no_grad()
def ddim_invert(
    model: EpsModel,
    schedule: Schedule,
    x0: torch.Tensor,
    *,
    steps: int | None = None,
    y: torch.Tensor | None = None,
    scale: float = 1.0,
    null_class: int | None = None,
) -> torch.Tensor:
    r"""DDIM inversion (Song et al., 2021): a code $x_T$ that deterministic DDIM maps
    back to ``x0``.

    Walks :func:`ddim_sample`'s time grid up from the clean data ($\bar\alpha = 1$):
    from $x_t$ to the next grid time $s > t$, $x_s = \sqrt{\bar\alpha_s}\, \hat x_0 +
    \sqrt{1 - \bar\alpha_s}\, \hat\epsilon$ with $\hat x_0 = (x_t - \sqrt{1 -
    \bar\alpha_t}\, \hat\epsilon) / \sqrt{\bar\alpha_t}$ and $\hat\epsilon =
    \epsilon_\theta(x_t, s)$ (guided as in :func:`guided_eps`). That is the sampler's
    step down from $s$ run backwards, with the usual approximation: its noise
    $\epsilon_\theta(x_s, s)$, not known yet, is taken at the current point. So
    :func:`ddim_sample` (``eta = 0``, the same ``steps`` and labels, ``clip=False``)
    returns about ``x0``, with an error of first order in the step: both follow the
    probability-flow ODE, exactly as the steps shrink (for an exact noise predictor of
    Gaussian data the code then tends to ``x0`` times the ratio of the standard
    deviations of $x_T$ and $x_0$). Nothing is clipped: the code must keep all of
    ``x0``, and data other than images in [-1, 1] work too.
    """
    _check_x(x0, "x0")
    _check_schedule(schedule)
    _check_guidance(model, y, len(x0), scale, null_class, values=True)
    times = _ddim_times(schedule, steps)
    x, a_t = x0, 1.0  # the clean data
    for step in reversed(times):
        t = torch.full((len(x),), step, device=x.device, dtype=torch.long)
        eps = guided_eps(model, x, t, y, scale=scale, null_class=null_class)
        a_s = float(schedule.alpha_bars[step])
        x0_hat = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        x = math.sqrt(a_s) * x0_hat + math.sqrt(1 - a_s) * eps
        a_t = a_s
    return x
