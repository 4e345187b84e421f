r"""Sampling from an autoregressive model: one pixel after another, in raster order.

Pixel $t$ is drawn from $p(x_t \mid x_{<t})$, so it must wait for all pixels before
it: $H \cdot W$ sequential steps, however parallel training was.

* :func:`sample_naive` runs the *whole* model on the whole image at every step and
  keeps one pixel of the answer: $H \cdot W$ full forward passes.
* :func:`sample_fast` computes only what the next pixel depends on, and gets exactly
  the same numbers. For a ``GatedPixelCNN``: once per row the vertical stack (on the
  rows that reach it), then per pixel the horizontal stack on a few columns of that one
  row. For a ``PixelCNN``: the model on the rows that reach row $i$. For a
  ``PixelRNN``: one LSTM step, carrying its state.

Both draw pixel $t$ by the inverse CDF of uniforms ``u`` ``(B, 1, H, W)`` drawn up front
(or passed in): the smallest level whose cumulative probability exceeds $u_t$. Fed the
same ``u``, the two samplers make the same choices, which is how the tests prove the
fast one exact. ``given`` and ``given_mask`` complete images: pixels where the mask is
true are copied from ``given`` instead of sampled. Taught in
``notebooks/02_pixelcnn.ipynb``.
"""

from __future__ import annotations

import math

import torch

from .autoregressive import AutoregressiveModel, embed_levels
from .checks import describe, positive_int


class _NaiveSession:
    """The whole model on the whole image, for every pixel."""

    def __init__(self, model: AutoregressiveModel, y: torch.Tensor | None):
        model.class_bias(y)  # checks y before the long loop starts
        self.model, self.y = model, y

    def begin_row(self, e: torch.Tensor, i: int) -> None:
        pass

    def pixel_logits(self, e: torch.Tensor, i: int, j: int) -> torch.Tensor:
        return self.model.forward_embedded(e, self.y)[:, :, i, j]  # (B, levels)


def _inverse_cdf(
    logits: torch.Tensor, u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`inverse_cdf` unchecked, and the total probability of each row ``(B,)``:
    NaN where the logits hold NaN or +inf, or are all -inf."""
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(dim=-1)  # (B, L)
    k = (cdf <= u.double()[:, None]).sum(dim=-1)
    return k.clamp(max=logits.shape[-1] - 1), cdf[:, -1]  # u beyond a rounded total


def inverse_cdf(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The level drawn by uniform ``u`` ``(B,)`` in [0, 1) from ``softmax(logits)``
    ``(B, L)``: the smallest ``k`` with ``P(X <= k) > u``.

    Logits are unnormalized log-probabilities (any real numbers; -inf for a level of
    probability 0), so no row needs to sum to anything; NaN or +inf logits, or a row
    that is all -inf, raise a ValueError.
    """
    for name, x in (("logits", logits), ("u", u)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a float tensor, got {describe(x)}")
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(
            f"logits must be (B, L) with L >= 1 levels, got {tuple(logits.shape)}"
        )
    if tuple(u.shape) != (len(logits),):
        raise ValueError(
            f"u must be one uniform per row of logits, shape ({len(logits)},), "
            f"got {tuple(u.shape)}"
        )
    if u.numel() and not (u.min() >= 0 and u.max() < 1):  # NaN fails too
        raise ValueError(
            f"u must lie in [0, 1), got values from {float(u.min()):.4g} to "
            f"{float(u.max()):.4g}"
        )
    level, total = _inverse_cdf(logits, u)
    if not bool(torch.isfinite(total).all()):
        raise ValueError(
            "logits must be real numbers or -inf with at least one finite value per "
            "row; got NaN, +inf or an all -inf row"
        )
    return level


def _sizes(model, num_samples, image_size, y, uniforms, given, given_mask):
    """The batch size and (H, W), from whichever arguments give them (they must
    agree)."""
    batch: dict[str, int] = {}
    shapes: dict[str, tuple[int, int]] = {}
    if num_samples is not None:
        batch["num_samples"] = positive_int(num_samples, "num_samples")
    if image_size is not None:
        if (
            not isinstance(image_size, (tuple, list))
            or len(image_size) != 2
            or not all(isinstance(s, int) and s > 0 for s in image_size)
        ):
            raise ValueError(f"image_size must be (H, W), got {image_size!r}")
        shapes["image_size"] = tuple(image_size)
    if y is not None and isinstance(y, torch.Tensor) and y.ndim == 1:
        batch["len(y)"] = len(y)
    if uniforms is not None:
        if not isinstance(uniforms, torch.Tensor) or not uniforms.is_floating_point():
            raise TypeError(
                f"uniforms must be a float tensor, got {describe(uniforms)}"
            )
        if uniforms.ndim != 4 or uniforms.shape[1] != 1:
            raise ValueError(
                f"uniforms must be (B, 1, H, W), got {tuple(uniforms.shape)}"
            )
        if uniforms.numel() and not (uniforms.min() >= 0 and uniforms.max() < 1):
            raise ValueError("uniforms must be in [0, 1)")
        batch["uniforms"] = len(uniforms)
        shapes["uniforms"] = tuple(uniforms.shape[2:])
    if (given is None) != (given_mask is None):
        raise ValueError("image completion needs both given and given_mask")
    if given is not None:
        model.check_levels(given)
        batch["given"] = len(given)
        shapes["given"] = tuple(given.shape[2:])
        if not isinstance(given_mask, torch.Tensor) or given_mask.dtype != torch.bool:
            raise TypeError(
                f"given_mask must be a bool tensor, got {describe(given_mask)}"
            )
        try:
            torch.broadcast_shapes(given_mask.shape, given.shape)
        except RuntimeError:
            raise ValueError(
                f"given_mask {tuple(given_mask.shape)} does not broadcast to "
                f"given {tuple(given.shape)}"
            ) from None
    if not batch:
        raise ValueError("pass num_samples (or y, uniforms or given, which imply it)")
    if len(set(batch.values())) > 1:
        raise ValueError(f"the batch sizes disagree: {batch}")
    if not shapes:
        raise ValueError(
            "pass image_size=(H, W) (or uniforms or given, which imply it)"
        )
    if len(set(shapes.values())) > 1:
        raise ValueError(f"the image sizes disagree: {shapes}")
    return next(iter(batch.values())), next(iter(shapes.values()))


def _sample(
    model,
    make_session,
    *,
    num_samples,
    image_size,
    y,
    uniforms,
    temperature,
    given,
    given_mask,
    generator,
    return_logits,
):
    if not isinstance(model, AutoregressiveModel):
        raise TypeError(
            f"expected a gmlib autoregressive model, got {type(model).__name__}"
        )
    if not isinstance(temperature, (int, float)) or not (0 < temperature < math.inf):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    b, (h, w) = _sizes(model, num_samples, image_size, y, uniforms, given, given_mask)
    dev = next(model.parameters()).device
    if uniforms is None:
        uniforms = torch.rand(b, 1, h, w, generator=generator)  # on the CPU: portable
    u = uniforms.to(dev)
    x = torch.zeros(b, 1, h, w, dtype=torch.long, device=dev)
    keep = None
    if given is not None:
        keep = given_mask.to(dev).expand(b, 1, h, w)
        x = torch.where(keep, given.to(dev).long(), x)
    y = y.to(dev) if isinstance(y, torch.Tensor) else y
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            session = make_session(model, y)
            e = embed_levels(x, model.levels)  # (B, 1, H, W), filled in as we go
            logits_seen, finite = [], torch.ones((), dtype=torch.bool, device=dev)
            for i in range(h):
                session.begin_row(e, i)
                for j in range(w):
                    logits = session.pixel_logits(e, i, j).float()  # (B, levels)
                    level, total = _inverse_cdf(logits / temperature, u[:, 0, i, j])
                    finite &= torch.isfinite(total).all()  # read once, at the end
                    if keep is not None:
                        level = torch.where(keep[:, 0, i, j], x[:, 0, i, j], level)
                    x[:, 0, i, j] = level
                    e[:, 0, i, j] = embed_levels(level, model.levels)
                    if return_logits:
                        logits_seen.append(logits)
    finally:
        model.train(was_training)
    if not bool(finite):
        raise ValueError(
            "the model's logits (divided by the temperature) were NaN or infinite at "
            "some pixel; are its weights finite?"
        )
    x = x.clone()  # a normal tensor (outside inference mode), usable with autograd
    if not return_logits:
        return x
    logits = torch.stack(logits_seen, dim=2).view(b, model.levels, h, w).clone()
    return x, logits


def sample_naive(
    model: AutoregressiveModel,
    *,
    num_samples: int | None = None,
    image_size: tuple[int, int] | None = None,
    y: torch.Tensor | None = None,
    uniforms: torch.Tensor | None = None,
    temperature: float = 1.0,
    given: torch.Tensor | None = None,
    given_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    return_logits: bool = False,
):
    """Levels ``(B, 1, H, W)`` drawn pixel by pixel, each by a full forward pass.

    ``y``: labels for a class-conditional model. ``uniforms`` ``(B, 1, H, W)`` in
    [0, 1): the draws (else from ``generator``). ``temperature`` divides the logits.
    ``given``, ``given_mask``: keep ``given`` where the mask is true. With
    ``return_logits=True`` also returns the logits ``(B, levels, H, W)`` each pixel
    was drawn from (before the temperature).
    """
    return _sample(
        model,
        _NaiveSession,
        num_samples=num_samples,
        image_size=image_size,
        y=y,
        uniforms=uniforms,
        temperature=temperature,
        given=given,
        given_mask=given_mask,
        generator=generator,
        return_logits=return_logits,
    )


def sample_fast(
    model: AutoregressiveModel,
    *,
    num_samples: int | None = None,
    image_size: tuple[int, int] | None = None,
    y: torch.Tensor | None = None,
    uniforms: torch.Tensor | None = None,
    temperature: float = 1.0,
    given: torch.Tensor | None = None,
    given_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    return_logits: bool = False,
):
    """:func:`sample_naive`'s samples (same arguments, same numbers), computing per
    pixel only what it depends on (the model's ``sampling_session``)."""
    return _sample(
        model,
        lambda m, labels: m.sampling_session(labels),
        num_samples=num_samples,
        image_size=image_size,
        y=y,
        uniforms=uniforms,
        temperature=temperature,
        given=given,
        given_mask=given_mask,
        generator=generator,
        return_logits=return_logits,
    )
