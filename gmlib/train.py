"""The shared training loop.

Small-image datasets fit in memory, so :func:`fit` holds the whole split on the device
as uint8, draws each batch by indexing a random permutation and converts it to float
there: no DataLoader, no per-sample transforms. On CUDA it adds bf16 autocast,
``cudnn.benchmark`` and channels_last; ``GMLIB_ACCEL_ON_CPU=1`` (or ``accelerate=True``)
runs that same path on the CPU. A loss that becomes NaN or infinite stops the run with
a :class:`DivergedError`. Taught in ``notebooks/00_introduction.ipynb``, section
"Maximum likelihood by gradient ascent".
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from . import checks, runtime
from .checks import positive_int

LossOutput = torch.Tensor | dict[str, torch.Tensor]
LossFn = Callable[..., LossOutput]


@dataclass
class History:
    """What a run measured, as plain data.

    Per-step losses and per-epoch means of every metric.
    """

    step_loss: list[float] = field(default_factory=list)  # one value per optimizer step
    # metric -> one value per epoch
    epochs: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0  # wall time spent training
    num_images: int = 0  # images seen in training
    # metric -> one value per step, for loops that log more than the loss (fit_gan)
    steps: dict[str, list[float]] = field(default_factory=dict)

    @property
    def loss(self) -> list[float]:
        """Mean training loss of each epoch."""
        return self.epochs.get("loss", [])

    @property
    def images_per_second(self) -> float:
        return self.num_images / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "step_loss": list(self.step_loss),
            "epochs": {k: list(v) for k, v in self.epochs.items()},
            "seconds": float(self.seconds),
            "num_images": int(self.num_images),
            "steps": {k: list(v) for k, v in self.steps.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "History":
        return cls(
            step_loss=list(data["step_loss"]),
            epochs={k: list(v) for k, v in data["epochs"].items()},
            seconds=float(data["seconds"]),
            num_images=int(data["num_images"]),
            steps={k: list(v) for k, v in data.get("steps", {}).items()},
        )


CHECK_EVERY = 32  # off the CPU: steps between the host syncs that check the loss


class DivergedError(FloatingPointError):
    """A training loss became NaN or infinite, and training stopped there.

    Attributes: ``history`` (the :class:`History` up to the last finite step, to plot),
    ``epoch`` and ``step`` (1-based, the step counted within its epoch),
    ``global_step`` (1-based, over the whole run), ``term`` (the key of the loss that
    diverged, e.g. ``"loss"``, ``"loss_d"`` or ``"loss_g"``), ``value`` (nan, inf or
    -inf) and ``last_finite`` (the last finite value of that loss, None if there was
    none). Raised by ``gmlib.gan.gan_step`` alone, it has no history, epoch or step.
    """

    history: History | None = None
    epoch: int | None = None
    step: int | None = None
    global_step: int | None = None
    term: str = "loss"
    value: float = math.nan
    last_finite: float | None = None


def _diverged(
    history: History,
    *,
    what: str,
    term: str,
    value: float,
    last_finite: float | None,
    epoch: int,
    step: int,
    steps_per_epoch: int,
    detail: str = "",
    check_every: int,
    lr: str | None,
) -> DivergedError:
    """The :class:`DivergedError` for the first non-finite ``term`` at ``step`` of
    ``epoch`` (both 0-based here), found by a check every ``check_every`` steps;
    ``history`` holds the run up to the step before."""
    global_step = epoch * steps_per_epoch + step + 1
    last = (
        f"the last finite {what} was {last_finite:.6g}"
        if last_finite is not None
        else f"no step before it had a finite {what}"
    )
    weights = (
        "The check ran before the optimizer step, so the weights are those after the "
        "last finite step."
        if check_every == 1
        else f"Off the CPU the loss is checked every {check_every} steps and at the "
        "end of each epoch, so the weights took the steps after it and may be "
        "non-finite."
    )
    exc = DivergedError(
        f"The {what} became {value} at epoch {epoch + 1}, step {step + 1} of "
        f"{steps_per_epoch} (global step {global_step}){detail}; {last}. {weights} "
        + _advice(lr)
    )
    exc.history, exc.term, exc.value = history, term, value
    exc.last_finite = last_finite
    exc.epoch, exc.step, exc.global_step = epoch + 1, step + 1, global_step
    return exc


def _advice(lr: str | None = None) -> str:
    return (
        f"Try a lower learning rate{f' (this run: {lr})' if lr else ''}, gradient "
        "clipping (torch.nn.utils.clip_grad_norm_), or check the data and the loss "
        "for log(0) or a division by zero."
    )


def _check_interval(device: torch.device) -> int:
    """Steps between the checks for a non-finite loss: every step on the CPU."""
    return 1 if device.type == "cpu" else CHECK_EVERY


def _end_run(
    history: History, bar, device: torch.device, start: float, *models: nn.Module
) -> None:
    """However a run ends: close its bar, wait for the device, record the seconds
    and leave the models in eval mode."""
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    history.seconds = time.perf_counter() - start
    for model in models:
        model.eval()


def progress_enabled(progress: bool | None = None) -> bool:
    """Progress bars show unless turned off: ``progress=False``, ``GMLIB_PROGRESS=0``
    or ``CI`` set.

    The book build sets ``GMLIB_PROGRESS=0`` so no bar ends up in a published page.
    """
    if progress is not None:
        return bool(progress)
    if os.environ.get("GMLIB_PROGRESS", "").strip() == "0":
        return False
    return not os.environ.get("CI")


def progress_bar(total: int, *, desc: str, progress: bool | None = None):
    """The tqdm.auto bar of gmlib's training loops (off as :func:`progress_enabled`
    says); it clears itself when closed."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=desc, disable=not progress_enabled(progress), leave=False
    )


INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_images(images: torch.Tensor, labels: torch.Tensor | None) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(
            "images must be uint8 (values 0..255, as gmlib.data.load returns them), "
            f"got dtype {images.dtype}"
        )
    if images.ndim < 2 or len(images) == 0:
        raise ValueError(
            f"images must be (N, ...) with N >= 1, got shape {tuple(images.shape)}"
        )
    if labels is None:
        return
    if not isinstance(labels, torch.Tensor) or labels.dtype not in INTEGER_DTYPES:
        raise TypeError(
            "labels must be an integer torch.Tensor (class indices), got "
            + (
                f"dtype {labels.dtype}"
                if isinstance(labels, torch.Tensor)
                else type(labels).__name__
            )
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"labels must be (N,) with N = {len(images)}, "
            f"got shape {tuple(labels.shape)}"
        )


def adam(params, *, lr: float, device: torch.device, **kwargs) -> torch.optim.Adam:
    """Adam, using the fused kernel (one kernel for all parameters) where the device
    has one.

    Same algorithm and numbers as the default for-each implementation, fewer passes over
    memory: on a 2-core CPU it trains the MLP VAE about 1.4x faster
    (bench/throughput.py).
    """
    params = list(params)
    if device.type in ("cuda", "cpu"):
        try:
            return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.Adam(params, lr=lr, **kwargs)


def fit(
    model: nn.Module,
    images: torch.Tensor,
    *,
    loss_fn: LossFn,
    num_epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    labels: torch.Tensor | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    device: torch.device | str | None = None,
    accelerate: bool | None = None,
    progress: bool | None = None,
    callback: Callable[[int, nn.Module, History], Any] | None = None,
    scheduler: Callable[[torch.optim.Optimizer, int], Any] | None = None,
    seed: int | None = None,
    desc: str = "train",
) -> History:
    """Train ``model`` on uint8 ``images`` for ``num_epochs``; returns the
    :class:`History`.

    ``loss_fn(model, x)`` (or ``loss_fn(model, x, y)`` when ``labels`` is given)
    receives a float batch in [0, 1] on the device and returns a scalar loss, or a dict
    of scalars with the key ``"loss"`` (the other entries are averaged per epoch too).
    The default optimizer is Adam with learning rate ``lr`` (fused where possible, see
    :func:`adam`). ``callback(epoch, model, history)`` runs after each epoch; returning
    ``True`` from it stops training early. ``scheduler(optimizer, total_steps)``
    builds a learning-rate scheduler (e.g. ``torch.optim.lr_scheduler.OneCycleLR``),
    stepped after every optimizer step.

    A loss that becomes NaN or infinite stops training with a :class:`DivergedError`
    that names the epoch and step, the last finite loss and what to try; its
    ``history`` holds the run up to the last finite step. On the CPU every step is
    checked before the optimizer steps (reading a CPU scalar costs no device sync), so
    the model keeps the weights of the last finite step. On an accelerator, where
    reading the loss waits for the device, it is checked every :data:`CHECK_EVERY`
    steps and at the end of each epoch: the error still names the first non-finite
    step, but the steps after it up to the check have been taken.
    """
    checks.module(model, "model")
    _check_images(images, labels)
    checks.function(loss_fn, "loss_fn", optional=False)
    checks.non_negative_int(num_epochs, "num_epochs")
    batch_size = positive_int(batch_size, "batch_size")
    lr = checks.learning_rate(lr, "lr")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            "optimizer must be a torch.optim.Optimizer or None, "
            f"got {type(optimizer).__name__}"
        )
    checks.function(callback, "callback")
    checks.function(scheduler, "scheduler")
    seed = checks.seed(seed)
    dev = torch.device(device) if device is not None else runtime.device()
    accel = runtime.accelerated(dev) if accelerate is None else bool(accelerate)

    model.to(dev)
    if accel and images.ndim == 4:
        model.to(memory_format=torch.channels_last)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data = images.to(dev)  # (N, ...) uint8, resident on the device
    targets = labels.to(dev) if labels is not None else None
    opt = (
        optimizer
        if optimizer is not None
        else adam(model.parameters(), lr=lr, device=dev)
    )
    n = len(data)
    steps_per_epoch = math.ceil(n / batch_size)
    sched = scheduler(opt, num_epochs * steps_per_epoch) if scheduler else None
    gen = torch.Generator(device=dev)
    gen.manual_seed(
        seed if seed is not None else int(torch.randint(2**31, (1,)).item())
    )

    history = History()
    check_every = _check_interval(dev)
    bar = progress_bar(num_epochs * steps_per_epoch, desc=desc, progress=progress)
    start = time.perf_counter()
    model.train()
    try:
        for epoch in range(num_epochs):
            sums: dict[str, torch.Tensor] = {}
            step_losses: list[torch.Tensor] = []
            step_terms: list[dict[str, torch.Tensor]] = []
            checked = 0  # steps of this epoch known to have a finite loss
            perm = torch.randperm(n, device=dev, generator=gen)
            for step, i in enumerate(range(0, n, batch_size), start=1):
                index = perm[i : i + batch_size]
                x = data[index].float().div_(255)  # (B, ...) float in [0, 1]
                if accel and x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                args = (model, x) if targets is None else (model, x, targets[index])
                with torch.autocast(
                    device_type=dev.type, dtype=torch.bfloat16, enabled=accel
                ):
                    out = loss_fn(*args)
                terms = out if isinstance(out, dict) else {"loss": out}
                if "loss" not in terms:
                    raise KeyError(
                        f"loss_fn returned a dict without 'loss' (keys: {list(terms)})"
                    )
                loss = terms["loss"].float()
                if loss.ndim != 0:
                    raise ValueError(
                        "loss_fn must return a scalar loss, "
                        f"got shape {tuple(loss.shape)}"
                    )
                step_losses.append(loss.detach())
                step_terms.append({k: v.detach().float() for k, v in terms.items()})
                if check_every == 1:  # a CPU scalar: reading it costs no device sync
                    finite = math.isfinite(loss.item())
                elif step % check_every == 0 or step == steps_per_epoch:
                    finite = bool(torch.stack(step_losses[checked:]).isfinite().all())
                    checked = step
                else:
                    finite = True
                if not finite:
                    raise _fit_diverged(
                        history,
                        step_losses,
                        step_terms,
                        epoch=epoch,
                        steps_per_epoch=steps_per_epoch,
                        batch_size=batch_size,
                        check_every=check_every,
                        lr=None if optimizer is not None else f"lr={lr:g}",
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                for k, v in step_terms[-1].items():  # on the device: no sync per step
                    sums[k] = sums.get(k, 0) + v * len(index)
                bar.update(1)
            # one sync per epoch
            history.step_loss.extend(torch.stack(step_losses).tolist())
            for k, v in sums.items():
                history.epochs.setdefault(k, []).append(float(v) / n)
            history.num_images += n
            bar.set_postfix(loss=f"{history.epochs['loss'][-1]:.4g}")
            if callback is not None and callback(epoch, model, history) is True:
                break
    finally:
        _end_run(history, bar, dev, start, model)
    return history


def _fit_diverged(
    history: History,
    step_losses: list[torch.Tensor],
    step_terms: list[dict[str, torch.Tensor]],
    *,
    epoch: int,
    steps_per_epoch: int,
    batch_size: int,
    check_every: int,
    lr: str | None,
) -> DivergedError:
    """:func:`fit`'s error for the first non-finite loss among this epoch's
    ``step_losses``; the finite steps before it go into ``history``."""
    values = torch.stack(step_losses).tolist()
    bad = next(j for j, v in enumerate(values) if not math.isfinite(v))
    history.step_loss.extend(values[:bad])
    history.num_images += bad * batch_size  # a short batch is always an epoch's last
    terms = step_terms[bad]
    detail = (
        "; the terms of that step: "
        + ", ".join(f"{k}={float(v):.6g}" for k, v in terms.items())
        if len(terms) > 1
        else ""
    )
    return _diverged(
        history,
        what="loss",
        term="loss",
        value=values[bad],
        last_finite=history.step_loss[-1] if history.step_loss else None,
        epoch=epoch,
        step=bad,
        steps_per_epoch=steps_per_epoch,
        detail=detail,
        check_every=check_every,
        lr=lr,
    )
