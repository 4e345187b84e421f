"""The shared training loop.

Small-image datasets fit in memory, so :func:`fit` holds the whole split on the device
as uint8, draws each batch by indexing a random permutation and converts it to float
there: no DataLoader, no per-sample transforms. On CUDA it adds bf16 autocast,
``cudnn.benchmark`` and channels_last; ``GMLIB_ACCEL_ON_CPU=1`` (or ``accelerate=True``)
runs that same path on the CPU. Taught in ``notebooks/00_introduction.ipynb``, section
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

from . import runtime

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
    if labels is not None and (labels.ndim != 1 or len(labels) != len(images)):
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
    """
    _check_images(images, labels)
    if not isinstance(num_epochs, int) or num_epochs < 0:
        raise ValueError(f"num_epochs must be a non-negative int, got {num_epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
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
    bar = progress_bar(num_epochs * steps_per_epoch, desc=desc, progress=progress)
    start = time.perf_counter()
    model.train()
    try:
        for epoch in range(num_epochs):
            sums: dict[str, torch.Tensor] = {}
            step_losses: list[torch.Tensor] = []
            perm = torch.randperm(n, device=dev, generator=gen)
            for i in range(0, n, batch_size):
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
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                for k, v in terms.items():  # sums stay on the device: no sync per step
                    sums[k] = sums.get(k, 0) + v.detach().float() * len(index)
                step_losses.append(loss.detach())
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
        bar.close()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        history.seconds = time.perf_counter() - start
        model.eval()
    return history
