r"""Generative adversarial networks: a generator against a discriminator.

The generator $G$ turns noise $z \sim \mathcal{N}(0, I)$ into a sample; the
discriminator $D$ outputs a logit $\ell$, with $D = \sigma(\ell)$ the probability
that its input is real. The game is
$\min_G \max_D \; \mathbb{E}_{x}[\log D(x)] + \mathbb{E}_{z}[\log(1 - D(G(z)))]$.
Every loss below takes logits and is written as its formula, computed through
$\log \sigma(\ell) = -\operatorname{softplus}(-\ell)$ and
$\log(1 - \sigma(\ell)) = -\operatorname{softplus}(\ell)$ so that no logarithm of a
rounded-to-zero probability is ever taken. Losses are batch means.
:func:`fit_gan` trains with ``k`` discriminator steps per generator step, holding the
data on the device as :func:`gmlib.fit` does. The 2-D toy problem is in
:mod:`gmlib.gan_toy`. Taught in ``notebooks/04_gan.ipynb``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import checks, runtime
from .checks import describe, positive_int
from .train import (
    DivergedError,
    History,
    _advice,
    _check_images,
    _check_interval,
    _diverged,
    _end_run,
    adam,
    progress_bar,
)

GENERATOR_LOSSES = ("non-saturating", "saturating", "least-squares")


def _check_logits(logits: torch.Tensor, name: str) -> torch.Tensor:
    """One float logit per sample, ``(B,)`` or ``(B, 1)``. The values are not read (a
    device sync at every step): a NaN logit gives a NaN loss."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(
            f"{name} must be a float tensor of logits, got {describe(logits)}"
        )
    if logits.numel() == 0:
        raise ValueError(f"{name} is empty: expected at least one logit")
    if not (logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1)):
        raise ValueError(
            f"{name} must hold one logit per sample, shape (B,) or (B, 1), "
            f"got shape {tuple(logits.shape)}"
        )
    return logits.float()


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, *, kind: str = "standard"
) -> torch.Tensor:
    r"""The discriminator's loss.

    ``"standard"``: $-\log D(x) - \log(1 - D(G(z)))$, the negative of the game's value
    (binary cross-entropy with real = 1, fake = 0). ``"least-squares"`` (LSGAN):
    $\tfrac12 (\ell_x - 1)^2 + \tfrac12 \ell_{G(z)}^2$ on the raw outputs.
    """
    real = _check_logits(real_logits, "real_logits")
    fake = _check_logits(fake_logits, "fake_logits")
    if kind == "standard":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "least-squares":
        return 0.5 * (real - 1).pow(2).mean() + 0.5 * fake.pow(2).mean()
    raise ValueError(f"kind must be 'standard' or 'least-squares', got {kind!r}")


def generator_loss(fake_logits: torch.Tensor, *, kind: str = "non-saturating"):
    r"""The generator's loss, to minimize.

    ``"saturating"``: $\log(1 - D(G(z)))$, the game's own term; its gradient vanishes
    where $D(G(z)) \approx 0$, i.e. exactly when the samples are bad.
    ``"non-saturating"``: $-\log D(G(z))$, the same fixed point with strong gradients
    where the samples are bad. ``"least-squares"``: $\tfrac12 (\ell_{G(z)} - 1)^2$.
    """
    fake = _check_logits(fake_logits, "fake_logits")
    if kind == "saturating":
        return -F.softplus(fake).mean()
    if kind == "non-saturating":
        return F.softplus(-fake).mean()
    if kind == "least-squares":
        return 0.5 * (fake - 1).pow(2).mean()
    raise ValueError(
        f"unknown generator loss {kind!r}; expected one of "
        f"{', '.join(map(repr, GENERATOR_LOSSES))}"
    )


class Generator(nn.Module):
    """DCGAN generator for 28 x 28 images: ``z (B, latent_dim) -> (B, 1, 28, 28)`` in
    [-1, 1].

    A transposed convolution projects the code to 7 x 7 (no hidden fully connected
    layer), two strided transposed convolutions upsample 7 -> 14 -> 28; batchnorm and
    ReLU after every layer but the last, tanh at the output.
    """

    def __init__(self, *, latent_dim: int = 64, channels: int = 64):
        super().__init__()
        self.latent_dim = positive_int(latent_dim, "latent_dim")
        c = positive_int(channels, "channels")
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 2 * c, 7, 1, 0, bias=False),  # 1 -> 7
            nn.BatchNorm2d(2 * c),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1, bias=False),  # 7 -> 14
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 4, 2, 1),  # 14 -> 28
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(
                f"z must be float codes of shape (B, {self.latent_dim}), "
                f"got {describe(z)}"
            )
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"expected codes of shape (B, {self.latent_dim}), got {tuple(z.shape)}"
            )
        z = z.to(self.net[0].weight.dtype)  # e.g. float64 codes for a float32 net
        return self.net(z[:, :, None, None])

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` images ``(n, 1, 28, 28)`` in [0, 1] from fresh noise."""
        n = positive_int(n, "n")
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return to_unit(self(z)).float()


class Discriminator(nn.Module):
    """DCGAN discriminator for 28 x 28 images: ``(B, 1, 28, 28)`` in [-1, 1] -> logits
    ``(B,)``.

    Strided convolutions 28 -> 14 -> 7 (no pooling), LeakyReLU(0.2), batchnorm on every
    layer but the first, and a 7 x 7 convolution to one logit (no fully connected
    layer).
    """

    def __init__(self, *, channels: int = 64):
        super().__init__()
        c = positive_int(channels, "channels")
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, 2, 1),  # 28 -> 14
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False),  # 14 -> 7
            nn.BatchNorm2d(2 * c),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 1, 7, 1, 0),  # 7 -> 1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(
                "expected float images (B, 1, 28, 28) in [-1, 1] (gm.gan.to_signed of "
                f"images in [0, 1]), got {describe(x)}"
            )
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"expected images (B, 1, 28, 28), got {tuple(x.shape)}")
        return self.net(x.to(self.net[0].weight.dtype)).flatten()


def _float_images(x, name: str, expected: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        hint = " (uint8 images: gm.data.to_float first)" if name == "to_signed" else ""
        raise TypeError(
            f"{name} takes a float tensor in {expected}{hint}, got {describe(x)}"
        )
    return x


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], the range of the generator's tanh. Float tensors only (uint8
    arithmetic would wrap around); the values are not read."""
    return _float_images(x, "to_signed", "[0, 1]") * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]. Float tensors only."""
    return (_float_images(x, "to_unit", "[-1, 1]") + 1) / 2


def init_weights(module: nn.Module) -> None:
    """DCGAN's initialization: convolution weights ~ N(0, 0.02), batchnorm scales
    ~ N(1, 0.02). Apply it to every layer with ``net.apply(init_weights)``."""
    if not isinstance(module, nn.Module):
        raise TypeError(
            "init_weights takes a torch.nn.Module (use net.apply(init_weights)), "
            f"got {type(module).__name__}"
        )
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


LOSS_NAMES = {"loss_d": "discriminator loss", "loss_g": "generator loss"}


def _finite_loss(
    loss: torch.Tensor, term: str, last_finite: float | None, where: str
) -> float:
    """The value of ``loss``, or a DivergedError (``gan_step``'s, without the epoch
    and step that ``fit_gan`` adds) if it is NaN or infinite."""
    value = loss.item()
    if math.isfinite(value):
        return value
    last = (
        f"; the last finite one was {last_finite:.6g}"
        if last_finite is not None
        else ""
    )
    exc = DivergedError(
        f"The {LOSS_NAMES[term]} became {value}{where}{last}. It was found before its "
        "optimizer step, so the weights are those after the last finite step. "
        + _advice()
    )
    exc.term, exc.value, exc.last_finite, exc._where = term, value, last_finite, where
    raise exc


def gan_step(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real_batches: list[torch.Tensor],
    *,
    latent_dim: int,
    loss: str = "non-saturating",
    noise: torch.Generator | None = None,
    check_finite: bool = False,
) -> dict[str, torch.Tensor]:
    """One round of the training algorithm: a discriminator step on each of the ``k``
    real batches (each against as many fresh fakes), then one generator step.

    Returns detached scalars: ``loss_d`` and ``loss_g``, and the mean probabilities
    ``d_real`` = D(x) and ``d_fake`` = D(G(z)) of the last discriminator step.
    ``check_finite=True`` reads every loss before its optimizer step (a host sync off
    the CPU) and raises a :class:`gmlib.train.DivergedError` at the first NaN or
    infinite one, so neither network takes a step from it.
    """
    kind_d = "least-squares" if loss == "least-squares" else "standard"
    device = real_batches[0].device
    last_d = None
    for j, real in enumerate(real_batches):
        z = torch.randn(len(real), latent_dim, generator=noise, device=device)
        with torch.no_grad():
            fake = generator(z)
        real_logits, fake_logits = discriminator(real), discriminator(fake)
        loss_d = discriminator_loss(real_logits, fake_logits, kind=kind_d)
        if check_finite:
            where = (
                f", discriminator step {j + 1} of {len(real_batches)}"
                if len(real_batches) > 1
                else ""
            )
            last_d = _finite_loss(loss_d, "loss_d", last_d, where)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
    z = torch.randn(len(real_batches[-1]), latent_dim, generator=noise, device=device)
    loss_g = generator_loss(discriminator(generator(z)), kind=loss)
    if check_finite:
        _finite_loss(loss_g, "loss_g", None, "")
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return {
        "loss_d": loss_d.detach(),
        "loss_g": loss_g.detach(),
        "d_real": torch.sigmoid(real_logits.detach().float()).mean(),
        "d_fake": torch.sigmoid(fake_logits.detach().float()).mean(),
    }


def fit_gan(
    generator: Generator,
    discriminator: Discriminator,
    images: torch.Tensor,
    *,
    num_epochs: int,
    k: int = 1,
    batch_size: int = 64,
    lr_g: float = 2e-4,
    lr_d: float = 2e-4,
    loss: str = "non-saturating",
    device: torch.device | str | None = None,
    progress: bool | None = None,
    callback: Callable[[int, nn.Module, History], Any] | None = None,
    step_callback: Callable[[int, nn.Module], Any] | None = None,
    seed: int | None = None,
    desc: str = "GAN",
) -> History:
    """Train a GAN on uint8 ``images`` ``(N, 1, 28, 28)``; returns the History.

    The whole split sits on the device as uint8; each discriminator step takes the next
    batch of a random permutation (scaled to [-1, 1]), so an epoch is one pass of the
    discriminator over the data and holds ``N / (k * batch_size)`` generator steps.
    Adam with beta1 = 0.5, as in DCGAN. ``history.steps`` holds ``loss_d``, ``loss_g``,
    ``d_real`` and ``d_fake`` per generator step, ``history.epochs`` their epoch means.
    ``callback(epoch, generator, history)`` runs after each epoch; returning True stops.
    ``step_callback(step, generator)`` runs after every generator step (counted from 1),
    with the generator in eval mode, e.g. to keep samples of fixed noise as it trains.

    A discriminator or generator loss that becomes NaN or infinite stops training with
    a :class:`gmlib.train.DivergedError` naming the loss, the epoch and step and the
    last finite value, with ``history`` up to the last finite step. As in
    :func:`gmlib.fit`: on the CPU every loss is checked before its optimizer step, so
    the weights are those after the last finite step; off the CPU the losses are
    checked every :data:`gmlib.train.CHECK_EVERY` generator steps and at the end of
    each epoch (one host sync each), still naming the first non-finite step.
    """
    checks.module(generator, "generator")
    checks.module(discriminator, "discriminator")
    latent_dim = getattr(generator, "latent_dim", None)
    if (
        isinstance(latent_dim, bool)
        or not isinstance(latent_dim, int)
        or latent_dim < 1
    ):
        raise TypeError(
            "generator must have an int attribute latent_dim >= 1 (the size of its "
            f"noise), as gmlib.gan.Generator has; got {latent_dim!r}"
        )
    _check_images(images, None)
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected images (N, 1, 28, 28), got {tuple(images.shape)}")
    checks.non_negative_int(num_epochs, "num_epochs")
    k = positive_int(k, "k")
    batch_size = positive_int(batch_size, "batch_size")
    lr_g = checks.learning_rate(lr_g, "lr_g")
    lr_d = checks.learning_rate(lr_d, "lr_d")
    checks.function(callback, "callback")
    checks.function(step_callback, "step_callback")
    seed = checks.seed(seed)
    if loss not in GENERATOR_LOSSES:
        raise ValueError(
            f"unknown loss {loss!r}; expected one of "
            f"{', '.join(map(repr, GENERATOR_LOSSES))}"
        )
    if len(images) < k * batch_size:
        raise ValueError(
            f"need at least k * batch_size = {k * batch_size} images, got {len(images)}"
        )
    dev = torch.device(device) if device is not None else runtime.device()
    generator.to(dev).train()
    discriminator.to(dev).train()
    opt_g = adam(generator.parameters(), lr=lr_g, device=dev, betas=(0.5, 0.999))
    opt_d = adam(discriminator.parameters(), lr=lr_d, device=dev, betas=(0.5, 0.999))
    data = images.to(dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed if seed is not None else int(torch.randint(2**31, (1,))))
    rounds = len(data) // (k * batch_size)  # generator steps per epoch

    history = History()
    check_every = _check_interval(dev)

    def diverged(epoch, records, exc: DivergedError | None = None) -> DivergedError:
        return _gan_diverged(
            history,
            records,
            exc,
            epoch=epoch,
            rounds=rounds,
            images_per_round=k * batch_size,
            check_every=check_every,
            lrs={"loss_d": f"lr_d={lr_d:g}", "loss_g": f"lr_g={lr_g:g}"},
        )

    bar = progress_bar(num_epochs * rounds, desc=desc, progress=progress)
    start = time.perf_counter()
    try:
        for epoch in range(num_epochs):
            perm = torch.randperm(len(data), device=dev, generator=gen)
            records: list[dict[str, torch.Tensor]] = []
            checked = 0  # rounds of this epoch known to have finite losses
            for r in range(rounds):
                index = perm[r * k * batch_size : (r + 1) * k * batch_size]
                real = to_signed(data[index].float().div_(255))
                try:
                    records.append(
                        gan_step(
                            generator,
                            discriminator,
                            opt_g,
                            opt_d,
                            list(real.split(batch_size)),
                            latent_dim=generator.latent_dim,
                            loss=loss,
                            noise=gen,
                            check_finite=check_every == 1,
                        )
                    )
                except DivergedError as exc:
                    raise diverged(epoch, records, exc) from None
                # on the CPU gan_step has checked; elsewhere one sync per check
                if check_every > 1 and ((r + 1) % check_every == 0 or r + 1 == rounds):
                    losses = [rec[t] for rec in records[checked:] for t in LOSS_NAMES]
                    if not bool(torch.stack(losses).isfinite().all()):
                        raise diverged(epoch, records)
                    checked = r + 1
                bar.update(1)
                if step_callback is not None:  # sees the generator in eval mode
                    generator.eval()
                    step_callback(epoch * rounds + r + 1, generator)
                    generator.train()
            steps = _record_rounds(history, records, rounds, k * batch_size)
            for key, values in steps.items():
                history.epochs.setdefault(key, []).append(sum(values) / len(values))
            bar.set_postfix(
                D=f"{history.epochs['d_real'][-1]:.2f}",
                DG=f"{history.epochs['d_fake'][-1]:.2f}",
            )
            if callback is not None and callback(epoch, generator, history) is True:
                break
    finally:
        _end_run(history, bar, dev, start, generator, discriminator)
    return history


def _record_rounds(
    history: History,
    records: list[dict[str, torch.Tensor]],
    count: int,
    images_per_round: int,
) -> dict[str, list[float]]:
    """Append the first ``count`` of an epoch's ``records`` to ``history`` (one host
    sync); returns them as lists."""
    steps = {
        key: torch.stack([rec[key] for rec in records]).tolist()[:count]
        for key in (records[0] if records else ())
    }
    for key, values in steps.items():
        history.steps.setdefault(key, []).extend(values)
    history.step_loss.extend(steps.get("loss_g", []))
    history.num_images += count * images_per_round
    return steps


def _gan_diverged(
    history: History,
    records: list[dict[str, torch.Tensor]],
    exc: DivergedError | None,
    *,
    epoch: int,
    rounds: int,
    images_per_round: int,
    check_every: int,
    lrs: dict[str, str],
) -> DivergedError:
    """:func:`fit_gan`'s error for the first non-finite loss: the one ``gan_step``
    raised (``exc``, after the finite ``records``), else the first in ``records``."""
    if exc is not None:
        bad, term, value, where = len(records), exc.term, exc.value, exc._where
    else:
        losses = torch.stack([rec[t] for rec in records for t in LOSS_NAMES])
        flat = next(i for i, v in enumerate(losses.tolist()) if not math.isfinite(v))
        bad, term, where = flat // 2, list(LOSS_NAMES)[flat % 2], ""
        value = float(records[bad][term])
    _record_rounds(history, records, bad, images_per_round)
    last_finite = exc.last_finite if exc is not None else None
    if last_finite is None and history.steps.get(term):
        last_finite = history.steps[term][-1]
    return _diverged(
        history,
        what=LOSS_NAMES[term],
        term=term,
        value=value,
        last_finite=last_finite,
        epoch=epoch,
        step=bad,
        steps_per_epoch=rounds,
        detail=where,
        check_every=check_every,
        lr=lrs[term],
    )
