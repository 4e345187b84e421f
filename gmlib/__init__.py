"""gmlib: the models and training loops of "Generative Models, an executable course".

``import gmlib as gm`` gives ``gm.runtime``, ``gm.data``, ``gm.train``,
``gm.checkpoints``, ``gm.viz``, the model modules (``gm.autoencoder``, ``gm.pixelcnn``,
``gm.pixelrnn``, ``gm.logistic``, ``gm.vae`` with ``gm.gaussians`` and
``gm.linear_gaussian``, ``gm.gan`` with ``gm.gan_toy``, ``gm.diffusion`` with
``gm.unet`` and ``gm.diffusion_elbo``) with ``gm.sampling``,
``gm.metrics`` (the shared Fashion-MNIST feature classifier and the Frechet distance),
``gm.widgets`` (live explorers; ipywidgets is imported only when one is built),
``gm.zoo`` (the trained models of chapters 02 to 05, by name), and the
most used names directly: ``gm.device``, ``gm.budget``, ``gm.settings``,
``gm.seed_everything``, ``gm.fit`` (which raises ``gm.DivergedError`` at a NaN or
infinite loss), ``gm.train_or_load``.
"""

from . import (
    autoencoder,
    autoregressive,
    checkpoints,
    data,
    diffusion,
    diffusion_elbo,
    gan,
    gan_toy,
    gaussians,
    linear_gaussian,
    logistic,
    metrics,
    pixelcnn,
    pixelrnn,
    runtime,
    sampling,
    train,
    unet,
    vae,
    viz,
    widgets,
    zoo,
)
from .checkpoints import train_or_load
from .data import load
from .runtime import budget, device, seed_everything, settings
from .train import DivergedError, History, fit
from .viz import show_images, static_slider

__all__ = [
    "autoencoder",
    "autoregressive",
    "checkpoints",
    "data",
    "diffusion",
    "diffusion_elbo",
    "gan",
    "gan_toy",
    "gaussians",
    "linear_gaussian",
    "logistic",
    "metrics",
    "pixelcnn",
    "pixelrnn",
    "runtime",
    "sampling",
    "train",
    "unet",
    "vae",
    "viz",
    "widgets",
    "zoo",
    "train_or_load",
    "load",
    "budget",
    "device",
    "seed_everything",
    "settings",
    "DivergedError",
    "History",
    "fit",
    "show_images",
    "static_slider",
]
__version__ = "0.1.0"
