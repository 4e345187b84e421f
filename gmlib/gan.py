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

from . import runtime
from .checks import positive_int
from .train import History, _check_images, adam, progress_bar

GENERATOR_LOSSES = ("non-saturating", "saturating", "least-squares")


def _check_logits(logits: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"{name} must be a float tensor of logits, got {logits!r:.60}")
    if logits.numel() == 0:
        raise ValueError(f"{name} is empty: expected at least one logit")
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
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"expected codes of shape (B, {self.latent_dim}), got {tuple(z.shape)}"
            )
        return self.net(z[:, :, None, None])

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` images ``(n, 1, 28, 28)`` in [0, 1] from fresh noise."""
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
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"expected images (B, 1, 28, 28), got {tuple(x.shape)}")
        return self.net(x).flatten()


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], the range of the generator's tanh."""
    return x * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (x + 1) / 2


def init_weights(module: nn.Module) -> None:
    """DCGAN's initialization: convolution weights ~ N(0, 0.02), batchnorm scales
    ~ N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


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
) -> dict[str, torch.Tensor]:
    """One round of the training algorithm: a discriminator step on each of the ``k``
    real batches (each against as many fresh fakes), then one generator step.

    Returns detached scalars: ``loss_d`` and ``loss_g``, and the mean probabilities
    ``d_real`` = D(x) and ``d_fake`` = D(G(z)) of the last discriminator step.
    """
    kind_d = "least-squares" if loss == "least-squares" else "standard"
    device = real_batches[0].device
    for real in real_batches:
        z = torch.randn(len(real), latent_dim, generator=noise, device=device)
        with torch.no_grad():
            fake = generator(z)
        real_logits, fake_logits = discriminator(real), discriminator(fake)
        loss_d = discriminator_loss(real_logits, fake_logits, kind=kind_d)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
    z = torch.randn(len(real_batches[-1]), latent_dim, generator=noise, device=device)
    loss_g = generator_loss(discriminator(generator(z)), kind=loss)
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
    """
    _check_images(images, None)
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected images (N, 1, 28, 28), got {tuple(images.shape)}")
    if (
        isinstance(num_epochs, bool)
        or not isinstance(num_epochs, int)
        or num_epochs < 0
    ):
        raise ValueError(f"num_epochs must be an int >= 0, got {num_epochs!r}")
    k = positive_int(k, "k")
    batch_size = positive_int(batch_size, "batch_size")
    for name, lr in (("lr_g", lr_g), ("lr_d", lr_d)):
        if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {lr!r}")
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
    bar = progress_bar(num_epochs * rounds, desc=desc, progress=progress)
    start = time.perf_counter()
    try:
        for epoch in range(num_epochs):
            perm = torch.randperm(len(data), device=dev, generator=gen)
            records: list[dict[str, torch.Tensor]] = []
            for r in range(rounds):
                index = perm[r * k * batch_size : (r + 1) * k * batch_size]
                real = to_signed(data[index].float().div_(255))
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
                    )
                )
                bar.update(1)
                if step_callback is not None:  # sees the generator in eval mode
                    generator.eval()
                    step_callback(epoch * rounds + r + 1, generator)
                    generator.train()
            for key in records[0]:  # one sync per epoch
                values = torch.stack([rec[key] for rec in records]).tolist()
                history.steps.setdefault(key, []).extend(values)
                history.epochs.setdefault(key, []).append(sum(values) / len(values))
            history.step_loss.extend(history.steps["loss_g"][-rounds:])
            history.num_images += rounds * k * batch_size
            bar.set_postfix(
                D=f"{history.epochs['d_real'][-1]:.2f}",
                DG=f"{history.epochs['d_fake'][-1]:.2f}",
            )
            if callback is not None and callback(epoch, generator, history) is True:
                break
    finally:
        bar.close()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        history.seconds = time.perf_counter() - start
        generator.eval()
        discriminator.eval()
    return history
