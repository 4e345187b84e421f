"""The trained models of chapters 02 to 05, by name, for any budget.

Chapter 06 compares the four families on the very models the earlier chapters
trained: ``zoo.load("pixelcnn-gated")`` returns chapter 02's gated PixelCNN with the
settings of the budget in use, loaded from the checkpoint cache under the key chapter
02 saved it with, or trained with chapter 02's recipe if it is absent. The chapters
keep their recipes in their own cells, where a student reads them; this module repeats
each recipe once, and ``tests/test_zoo.py`` executes the chapters' cells to prove the
two agree (checkpoint key, initial weights and the training call) at every budget.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import checkpoints, runtime
from . import data as _data
from . import gan as _gan
from . import pixelcnn as _pc
from . import train as _train
from . import vae as _vae
from .diffusion import Schedule
from .diffusion import loss as _diffusion_loss
from .unet import UNet

NAMES = ("pixelcnn-gated", "vae-mlp", "dcgan", "diffusion-unet")
NULL_CLASS = 10  # the diffusion model's "no class" label

# Each chapter's settings (those of its cached model) per budget, as in its setup cell.
# fmt: off
_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "pixelcnn-gated": {  # chapter 02
        "smoke": dict(levels=4, channels=16, num_layers=4, num_images=2000, epochs=1,
                      batch_size=32, lr=3e-3),
        "cpu": dict(levels=4, channels=16, num_layers=6, num_images=45000, epochs=1,
                    batch_size=32, lr=3e-3),
        "full": dict(levels=256, channels=64, num_layers=10, num_images=60000,
                     epochs=6, batch_size=128, lr=2e-3),
    },
    "vae-mlp": {  # chapter 03
        "smoke": dict(num_images=5000, latent_dim=8, lr=1e-3, batch_size=128,
                      data="binarized", hidden=(128,), epochs=2),
        "cpu": dict(num_images=60000, latent_dim=16, lr=1e-3, batch_size=128,
                    data="binarized", hidden=(512, 256), epochs=10),
        "full": dict(num_images=60000, latent_dim=16, lr=1e-3, batch_size=128,
                     data="binarized", hidden=(512, 256), epochs=50),
    },
    "dcgan": {  # chapter 04
        "smoke": dict(num_images=4000, channels=8, latent_dim=32, epochs=1,
                      batch_size=64, k=1, lr=2e-4, snapshot_every=10),
        "cpu": dict(num_images=60000, channels=32, latent_dim=64, epochs=3,
                    batch_size=64, k=1, lr=2e-4, snapshot_every=75),
        "full": dict(num_images=60000, channels=64, latent_dim=64, epochs=15,
                     batch_size=64, k=1, lr=2e-4, snapshot_every=500),
    },
    "diffusion-unet": {  # chapter 05
        "smoke": dict(T=50, num_images=4000, channels=8, epochs=3, batch_size=32,
                      lr=3e-3, p_uncond=0.2, schedule="cosine"),
        "cpu": dict(T=100, num_images=60000, channels=16, epochs=1, batch_size=16,
                    lr=3e-3, p_uncond=0.2, schedule="cosine"),
        "full": dict(T=1000, num_images=60000, channels=64, epochs=20,
                     batch_size=128, lr=2e-3, p_uncond=0.2, schedule="cosine"),
    },
}
# fmt: on
CHAPTERS = {
    "pixelcnn-gated": "02_pixelcnn",
    "vae-mlp": "03_vae",
    "dcgan": "04_gan",
    "diffusion-unet": "05_diffusion",
}


def _name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(
            f"name must be a str, one of {', '.join(NAMES)}; got {type(name).__name__}"
        )
    if name not in _SETTINGS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(NAMES)}")
    return str(name)


def settings(name: str, budget: str | None = None) -> dict[str, Any]:
    """The settings ``name`` is cached under at ``budget`` (default: the budget in use),
    exactly as its chapter passes them to ``train_or_load``."""
    name = _name(name)
    budget = runtime.budget() if budget is None else runtime.check_budget(budget)
    return dict(_SETTINGS[name][budget])


class GANPair(nn.Module):
    """Chapter 04's checkpoint: the generator, the discriminator and the snapshots of
    fixed noise taken while training (``(n, 16, 1, 28, 28)`` uint8)."""

    def __init__(self, s: dict[str, Any]):
        super().__init__()
        torch.manual_seed(0)
        self.generator = _gan.Generator(
            latent_dim=s["latent_dim"], channels=s["channels"]
        )
        self.discriminator = _gan.Discriminator(channels=s["channels"])
        self.generator.apply(_gan.init_weights)
        self.discriminator.apply(_gan.init_weights)
        rounds = s["num_images"] // (s["k"] * s["batch_size"])
        n_snapshots = s["epochs"] * rounds // s["snapshot_every"]
        self.register_buffer(
            "snapshots", torch.zeros(n_snapshots, 16, 1, 28, 28, dtype=torch.uint8)
        )


def build(name: str, budget: str | None = None) -> nn.Module:
    """A fresh, untrained ``name`` with the initial weights its chapter starts from."""
    s = settings(name, budget)
    torch.manual_seed(0)
    if name == "pixelcnn-gated":
        return _pc.GatedPixelCNN(
            levels=s["levels"],
            channels=s["channels"],
            num_layers=s["num_layers"],
            num_classes=10,
        )
    if name == "vae-mlp":
        return _vae.MLPVAE(hidden_dims=s["hidden"], latent_dim=s["latent_dim"])
    if name == "dcgan":
        return GANPair(s)
    return UNet(channels=s["channels"], num_classes=10)


def schedule(budget: str | None = None) -> Schedule:
    """The noise schedule the diffusion model of ``budget`` was trained with."""
    s = settings("diffusion-unet", budget)
    return Schedule.cosine(s["T"])


def _one_cycle(lr: float, **kwargs):
    def scheduler(optimizer, total_steps):
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=total_steps, **kwargs
        )

    return scheduler


def train(name: str, model: nn.Module, budget: str | None = None) -> _train.History:
    """Train ``model`` (from :func:`build`) with its chapter's recipe; returns the
    History."""
    s = settings(name, budget)
    images = _data.load("fashion-mnist", split="train", limit=s["num_images"])
    if name == "pixelcnn-gated":
        return _train.fit(
            model,
            images.images,
            labels=images.labels,
            loss_fn=_pc.pixelcnn_loss(s["levels"]),
            num_epochs=s["epochs"],
            lr=s["lr"],
            scheduler=_one_cycle(s["lr"], pct_start=0.05),
            batch_size=s["batch_size"],
            seed=0,
            desc="gated PixelCNN",
        )
    if name == "vae-mlp":
        g = torch.Generator(device=runtime.device()).manual_seed(0)
        return _train.fit(
            model,
            images.images,
            loss_fn=lambda m, x: _vae.loss(
                m, _vae.binarize(x, generator=g), beta=1.0, generator=g
            ),
            num_epochs=s["epochs"],
            batch_size=s["batch_size"],
            lr=s["lr"],
            seed=0,
            desc="MLP VAE",
        )
    if name == "dcgan":
        return _train_gan(model, images.images, s)
    sched = schedule(budget)
    return _train.fit(
        model,
        images.images,
        labels=images.labels,
        loss_fn=lambda m, x, y: _diffusion_loss(
            m, sched, x, y, p_uncond=s["p_uncond"], null_class=NULL_CLASS
        ),
        num_epochs=s["epochs"],
        batch_size=s["batch_size"],
        lr=s["lr"],
        seed=0,
        scheduler=_one_cycle(s["lr"]),
        desc="U-Net",
    )


def _train_gan(pair: GANPair, images: torch.Tensor, s: dict[str, Any]):
    fixed_noise = torch.randn(
        16, s["latent_dim"], generator=torch.Generator().manual_seed(7)
    )
    n_snapshots, shots = len(pair.snapshots), []

    def keep(step: int, generator: nn.Module) -> None:
        if step % s["snapshot_every"] == 0 and len(shots) < n_snapshots:
            with torch.no_grad():
                x = _gan.to_unit(generator(fixed_noise.to(runtime.device())))
            shots.append((x * 255).round().byte().cpu())

    history = _gan.fit_gan(
        pair.generator,
        pair.discriminator,
        images,
        num_epochs=s["epochs"],
        k=s["k"],
        batch_size=s["batch_size"],
        lr_g=s["lr"],
        lr_d=s["lr"],
        seed=0,
        step_callback=keep,
        desc="DCGAN",
    )
    if shots:
        pair.snapshots[: len(shots)] = torch.stack(shots).to(pair.snapshots.device)
    return history


def load(
    name: str, budget: str | None = None, *, retrain: bool = False, verbose: bool = True
) -> tuple[nn.Module, _train.History]:
    """``(model, history)`` of chapter ``name`` at ``budget``: from the checkpoint cache
    (the chapter's own file) if present, else built, trained with the chapter's recipe
    and cached, as :func:`gmlib.train_or_load` does."""
    return checkpoints.train_or_load(
        _name(name),
        settings(name, budget),
        build=lambda: build(name, budget),
        train=lambda model: train(name, model, budget),
        retrain=retrain,
        verbose=verbose,
    )
