r"""The shared Fashion-MNIST classifier, and the Frechet distance on its features.

The Frechet Inception Distance (FID; Heusel et al., 2017) fits a Gaussian to features of
each image set, $\mathcal{N}(\mu_1, \Sigma_1)$ (real) and $\mathcal{N}(\mu_2, \Sigma_2)$
(generated), and reports the Frechet distance between them, $\lVert \mu_1 - \mu_2
\rVert^2 + \operatorname{Tr}(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2})$: lower
is better, a set against itself scores 0. Inception v3 features describe photographs,
not 28x28 grey-scale clothes, so here the features are the 128-unit penultimate layer of
:class:`FeatureClassifier`, trained once by :func:`feature_classifier` through the
checkpoint cache: every chapter measures with the very same network, and the numbers
compare models within this course, not with published FIDs. The distance is
torchmetrics' ``FrechetInceptionDistance`` with that network as its custom feature
extractor: it runs offline, never downloading Inception weights. Taught in
``notebooks/04_gan.ipynb``.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from . import checks, runtime
from .checkpoints import train_or_load
from .data import load
from .train import History, fit

IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
NUM_FEATURES = 128
INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
# The fixed recipe of feature_classifier(), all of it in the checkpoint's key. Measured
# on a 2-core CPU: 89.0% test accuracy, 20-25 s of training when no other job runs.
SETTINGS = {
    "dataset": "fashion-mnist (train, all 60000)",
    "architecture": "conv32/2-conv64/2-fc128",
    "epochs": 2,
    "batch_size": 128,
    "max_lr": 3e-3,  # one-cycle schedule
    "seed": 0,
}


class FeatureClassifier(nn.Module):
    """A small CNN for float images ``(B, 1, 28, 28)`` in [0, 1]: two 3x3 convolutions
    with stride 2 (32 then 64 channels, 28 -> 14 -> 7), a 128-unit hidden layer (the
    features) and 10 class logits."""

    def __init__(self) -> None:
        super().__init__()
        self.image_shape = IMAGE_SHAPE
        self.num_features = NUM_FEATURES  # torchmetrics reads this attribute
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1),  # (B, 32, 14, 14)
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),  # (B, 64, 7, 7)
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, NUM_FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(NUM_FEATURES, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer: ``(B, 128)``, what the Frechet distance compares."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(
                f"expected float images in [0, 1], got {got}; "
                "convert uint8 images with gm.data.to_float(images)"
            )
        if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(
                f"expected images of shape (B, 1, 28, 28), got {tuple(x.shape)}"
            )
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, 10)``."""
        return self.head(self.features(x))


def _training_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The whole Fashion-MNIST training split (the tests swap in a tiny set)."""
    return tuple(load("fashion-mnist", split="train"))


def feature_classifier(
    *, epochs: int | None = None, verbose: bool = True
) -> FeatureClassifier:
    """The course's one feature extractor: a :class:`FeatureClassifier` trained on the
    full Fashion-MNIST training split with the fixed :data:`SETTINGS`.

    It trains once (under a minute on a 2-core CPU) through ``gm.train_or_load`` under
    the name ``"fashion-classifier"``; every later call, in any chapter, loads those
    same weights from the cache. ``epochs=None`` means ``SETTINGS["epochs"]``; another
    value is another network with its own checkpoint. Returned in eval mode on
    ``gm.device()``; ``verbose=False`` drops the "loaded ..." line.
    """
    settings = dict(SETTINGS)
    if epochs is not None:
        settings["epochs"] = checks.positive_int(epochs, "epochs")

    def build() -> FeatureClassifier:
        with torch.random.fork_rng(devices=[]):  # leaves the caller's random stream
            torch.manual_seed(settings["seed"])
            return FeatureClassifier()

    def train(model: nn.Module) -> History:
        images, labels = _training_data()
        return fit(
            model,
            images,
            labels=labels,
            loss_fn=lambda m, x, y: F.cross_entropy(m(x), y),
            num_epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            lr=settings["max_lr"],
            scheduler=lambda opt, total: torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=settings["max_lr"], total_steps=total
            ),
            seed=settings["seed"],
            desc="feature classifier",
        )

    model, _ = train_or_load(
        "fashion-classifier", settings, build=build, train=train, verbose=verbose
    )
    return model


def _checked_images(images: object, name: str, *, min_count: int) -> torch.Tensor:
    """``images`` if they are ``(N, 1, 28, 28)``, uint8 or float in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of images, got {type(images).__name__}"
        )
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(
            f"{name} must be uint8 (0..255) or float in [0, 1], "
            f"got dtype {images.dtype}"
        )
    if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(
            f"{name} must be images of shape (N, 1, 28, 28), "
            f"got shape {tuple(images.shape)}"
        )
    if len(images) < min_count:
        raise ValueError(
            f"{name} must hold at least {min_count} images, got {len(images)}"
            + (" (a covariance needs two)" if min_count == 2 else "")
        )
    if images.is_floating_point():
        low, high = float(images.min()), float(images.max())
        if not (0.0 <= low and high <= 1.0):  # NaN fails this too
            raise ValueError(
                f"{name} are float, so their values must lie in [0, 1]; found values "
                f"from {low:.4g} to {high:.4g} (pass 0..255 images as uint8)"
            )
    return images


@contextmanager
def _evaluating(model: nn.Module):
    """``model`` on ``gm.device()`` in eval mode (restored after); yields the device."""
    dev = runtime.device()
    was_training = model.training
    model.to(dev).eval()
    try:
        yield dev
    finally:
        model.train(was_training)


def _batches(images: torch.Tensor, batch_size: int, device: torch.device):
    """Float batches in [0, 1] on ``device``, converted there from uint8 if need be."""
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device)
        yield x.float().div_(255) if x.dtype == torch.uint8 else x.float()


class _Features(nn.Module):
    """``classifier.features`` as torchmetrics' custom feature extractor. torchmetrics
    hands it our float batches unchanged and reads ``num_features`` rather than probing
    with a (1, 3, 299, 299) dummy. Features come back float64 on the CPU, where the
    metric sums them and their outer products in float64 (MPS has no float64), and
    compute() returns float64 because they are."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier
        self.num_features = int(classifier.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.classifier.features(x).double().cpu()  # (B, num_features)
        if tuple(f.shape) != (len(x), self.num_features):
            raise ValueError(
                f"classifier.features gave shape {tuple(f.shape)} for {len(x)} images; "
                f"expected ({len(x)}, {self.num_features}), its num_features"
            )
        if not bool(torch.isfinite(f).all()):
            raise ValueError(
                "classifier.features gave NaN or infinite values: the Frechet "
                "distance needs finite features (are the classifier's weights finite?)"
            )
        return f


@torch.no_grad()
def frechet_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    classifier: nn.Module | None = None,
    batch_size: int = 500,
) -> float:
    r"""The Frechet distance between the classifier features of two image sets,
    $\lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{Tr}(\Sigma_1 + \Sigma_2
    - 2 (\Sigma_1 \Sigma_2)^{1/2})$ (lower is better).

    ``real`` and ``fake`` are ``(N, 1, 28, 28)`` images, uint8 (0..255) or float in
    [0, 1], at least 2 each; the sets may differ in size. Use thousands: with few images
    the estimate is biased upwards (two sets of real images score about 3.7 with 1,000
    images each, 0.3 with 10,000). ``classifier=None`` means
    :func:`feature_classifier`. Features are computed on ``gm.device()`` (the classifier
    is moved there) in batches of ``batch_size``, in eval mode; the classifier's mode is
    restored afterwards.
    """
    real = _checked_images(real, "real", min_count=2)
    fake = _checked_images(fake, "fake", min_count=2)
    batch_size = checks.positive_int(batch_size, "batch_size")
    if classifier is None:
        classifier = feature_classifier(verbose=False)
    num_features = getattr(classifier, "num_features", None)
    if not isinstance(classifier, nn.Module) or not isinstance(num_features, int):
        raise TypeError(
            "classifier must be a FeatureClassifier (an nn.Module with features(x) "
            f"and an int num_features) or None, got {type(classifier).__name__}"
        )
    # imported here: torchmetrics takes seconds to import and only this needs it
    from torchmetrics.image.fid import FrechetInceptionDistance

    with _evaluating(classifier) as dev:
        metric = FrechetInceptionDistance(feature=_Features(classifier))
        for images, is_real in ((real, True), (fake, False)):
            for x in _batches(images, batch_size, dev):
                metric.update(x, real=is_real)
        return float(metric.compute())


@torch.no_grad()
def classifier_accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor
) -> float:
    """The fraction of ``images`` (uint8 or float in [0, 1], ``(N, 1, 28, 28)``) whose
    highest logit is the one of their label (``(N,)`` integers); computed on
    ``gm.device()`` in eval mode, 1000 images at a time."""
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module classifier, got {type(model).__name__}"
        )
    images = _checked_images(images, "images", min_count=1)
    if not isinstance(labels, torch.Tensor) or labels.dtype not in INTEGER_DTYPES:
        got = labels.dtype if isinstance(labels, torch.Tensor) else type(labels)
        raise TypeError(f"labels must be an integer tensor of classes, got {got}")
    if tuple(labels.shape) != (len(images),):
        raise ValueError(
            f"labels must have shape ({len(images)},), one per image, "
            f"got {tuple(labels.shape)}"
        )
    correct = 0
    with _evaluating(model) as dev:
        for i, x in zip(range(0, len(images), 1000), _batches(images, 1000, dev)):
            y, logits = labels[i : i + len(x)].to(dev), model(x)
            if logits.ndim != 2 or len(logits) != len(x):
                raise ValueError(
                    f"model must give class logits (B, classes): got shape "
                    f"{tuple(logits.shape)} for {len(x)} images"
                )
            if i == 0:  # labels no model output could match would score 0 silently
                checks.labels(labels, "labels", num_classes=logits.shape[1])
            correct += int((logits.argmax(1) == y).sum())
    return correct / len(images)
