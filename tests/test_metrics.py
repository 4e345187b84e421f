"""The feature classifier and the Frechet distance: the distance against an independent
computation of its formula, its behaviour (zero for a set against itself, growing with
noise), uint8 and float input alike, the classifier learning, the train-once cache, bad
input.

No test trains on Fashion-MNIST: the images are scikit-learn's bundled 8x8 digits
scaled up to 28x28 (never a download), and the classifiers are trained on a few hundred
of them. No test may open a network connection."""

import socket
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

import gmlib as gm
from gmlib import metrics

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True, scope="module")
def _no_network():
    def refuse(*args, **kwargs):
        raise AssertionError("a metrics test tried to open a network connection")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield


def digits28(split, limit=None):
    """Digits as uint8 (N, 1, 28, 28) images and their labels."""
    x, y = gm.data.load("digits", split=split, limit=limit)
    x = F.interpolate(x.float(), size=(28, 28), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8), y


def train_classifier(images, labels, epochs=3, seed=0):
    torch.manual_seed(seed)
    model = metrics.FeatureClassifier()
    history = gm.fit(
        model,
        images,
        labels=labels,
        loss_fn=lambda m, x, y: F.cross_entropy(m(x), y),
        num_epochs=epochs,
        batch_size=32,
        lr=2e-3,
        seed=seed,
        progress=False,
    )
    return model.eval(), history


@pytest.fixture(scope="module")
def digits():
    return digits28("train"), digits28("test")  # 1437 and 360 images


@pytest.fixture(scope="module")
def trained(digits):
    """A classifier trained on 500 digits for 3 epochs, and its history."""
    (x, y), _ = digits
    return train_classifier(x[:500], y[:500])


def test_the_classifier_learns_and_its_features_are_128_wide(digits, trained):
    model, history = trained
    _, (x_test, y_test) = digits
    accuracy = metrics.classifier_accuracy(model, x_test, y_test)
    assert accuracy > 0.6, f"{accuracy:.2f} on held-out digits (chance is 0.10)"
    assert history.loss[-1] < history.loss[0] / 2
    x = gm.data.to_float(x_test[:7])
    assert model.features(x).shape == (7, 128) and model.num_features == 128
    assert model(x).shape == (7, 10)
    by_hand = (model(gm.data.to_float(x_test)).argmax(1) == y_test).float().mean()
    assert accuracy == pytest.approx(float(by_hand))
    assert metrics.classifier_accuracy(model, x_test.float() / 255, y_test) == accuracy


def frechet_by_hand(fa, fb):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) with numpy and scipy."""
    mu1, mu2 = fa.mean(0), fb.mean(0)
    s1, s2 = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)  # divide by N - 1
    with warnings.catch_warnings():  # dead ReLU units make S1 S2 singular
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(s1 @ s2)
    assert np.abs(root.imag).max() < 1e-6 * np.abs(root.real).max()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root.real))


@pytest.mark.parametrize("which", ["trained", "untrained"])
def test_frechet_distance_is_the_formula(digits, trained, which):
    (x_train, _), (x_test, _) = digits
    if which == "trained":
        model = trained[0]
    else:
        torch.manual_seed(1)
        model = metrics.FeatureClassifier()
    real, fake = x_train[:400], x_test  # sets of different sizes
    with torch.no_grad():
        fa, fb = (
            model.features(gm.data.to_float(x)).double().numpy() for x in (real, fake)
        )
    expected = frechet_by_hand(fa, fb)
    assert expected > 0
    model.train()  # frechet_distance works in eval mode and restores the mode after
    got = metrics.frechet_distance(real, fake, classifier=model, batch_size=128)
    assert model.training
    model.eval()
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-8)


def test_zero_against_itself_and_growing_with_noise(digits, trained):
    model = trained[0]
    _, (x, _) = digits
    real = gm.data.to_float(x)
    assert abs(metrics.frechet_distance(real, real, classifier=model)) < 1e-6
    g = torch.Generator().manual_seed(0)
    noisy = [
        (real + sigma * torch.randn(real.shape, generator=g)).clamp(0, 1)
        for sigma in (0.05, 0.1, 0.2, 0.4)
    ]
    distances = [metrics.frechet_distance(real, n, classifier=model) for n in noisy]
    assert 1e-3 < distances[0], distances
    assert all(a < b for a, b in zip(distances, distances[1:])), distances
    shifted = real.roll(2, dims=3)  # two pixels to the right
    assert metrics.frechet_distance(real, shifted, classifier=model) > distances[0]


def test_uint8_and_float_agree_and_batches_do_not_matter(digits, trained):
    model = trained[0]
    (x_train, _), (x_test, _) = digits
    real, fake = x_train[:300], x_test
    as_uint8 = metrics.frechet_distance(real, fake, classifier=model)
    as_float = metrics.frechet_distance(
        real.float() / 255, fake.double() / 255, classifier=model
    )
    assert as_float == as_uint8
    small = metrics.frechet_distance(real, fake, classifier=model, batch_size=7)
    assert small == pytest.approx(as_uint8, rel=1e-9)
    swapped = metrics.frechet_distance(fake, real, classifier=model)
    assert swapped == pytest.approx(as_uint8, rel=1e-9)


def test_feature_classifier_trains_once_then_loads(
    digits, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("GMLIB_CACHE", str(tmp_path / "cache"))
    (x, y), (x_test, _) = digits
    loads = []

    def tiny():
        loads.append(len(x[:64]))
        return x[:64], y[:64]

    monkeypatch.setattr(metrics, "_training_data", tiny)
    monkeypatch.setitem(metrics.SETTINGS, "epochs", 1)
    first = metrics.feature_classifier()
    second = metrics.feature_classifier()
    assert loads == [64], "the second call must load, not train"
    assert "loaded fashion-classifier" in capsys.readouterr().out
    path = gm.checkpoints.checkpoint_path("fashion-classifier", metrics.SETTINGS)
    assert path.is_file() and path.parent == tmp_path / "cache" / "checkpoints"
    assert isinstance(second, metrics.FeatureClassifier) and second is not first
    assert not second.training and next(second.parameters()).device == gm.device()
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    # classifier=None measures with that same network, from the cache
    default = metrics.frechet_distance(x[:100], x_test[:100])
    assert loads == [64]
    assert default == metrics.frechet_distance(x[:100], x_test[:100], classifier=first)


# name -> (how to spoil a good uint8 (5, 1, 28, 28) batch, the error, its message)
BAD_IMAGES = {
    "numpy": (lambda x: x.numpy(), TypeError, "torch.Tensor of images, got ndarray"),
    "int64": (
        lambda x: x.long(),
        TypeError,
        r"uint8 \(0..255\) or float in \[0, 1\], got dtype torch.int64",
    ),
    "bool": (lambda x: x.bool(), TypeError, "got dtype torch.bool"),
    "no channel": (
        lambda x: x[:, 0],
        ValueError,
        r"\(N, 1, 28, 28\), got shape \(5, 28, 28\)",
    ),
    "rgb": (lambda x: x.expand(-1, 3, -1, -1), ValueError, r"\(5, 3, 28, 28\)"),
    "8x8": (lambda x: x[:, :, :8, :8], ValueError, r"got shape \(5, 1, 8, 8\)"),
    "float 0..255": (
        lambda x: x.float(),
        ValueError,
        r"\[0, 1\]; found values from 0 to 255",
    ),
    "negative": (lambda x: x / 255 - 0.5, ValueError, r"must lie in \[0, 1\]"),
    "nan": (
        lambda x: torch.full(x.shape, float("nan")),
        ValueError,
        r"must lie in \[0, 1\]",
    ),
    "one image": (lambda x: x[:1], ValueError, "at least 2 images, got 1"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
@pytest.mark.parametrize("side", ["real", "fake"])
def test_bad_images_are_explained(case, side):
    model = metrics.FeatureClassifier()
    good = (torch.arange(5 * 28 * 28) % 256).to(torch.uint8).view(5, 1, 28, 28)
    spoil, error, message = BAD_IMAGES[case]
    bad = spoil(good)
    args = (bad, good) if side == "real" else (good, bad)
    with pytest.raises(error, match=message) as info:
        metrics.frechet_distance(*args, classifier=model)
    assert str(info.value).startswith(side)


def test_other_bad_input_is_explained():
    model = metrics.FeatureClassifier()
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        metrics.frechet_distance(x, x, classifier=model, batch_size=0)
    with pytest.raises(TypeError, match="classifier must be a FeatureClassifier"):
        metrics.frechet_distance(x, x, classifier="inception")
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        metrics.feature_classifier(epochs=0)
    with pytest.raises(TypeError, match="to_float"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\), got \(2, 1, 32, 32\)"):
        model.features(torch.zeros(2, 1, 32, 32))
    labels = torch.tensor([0, 1, 2, 3])
    with pytest.raises(TypeError, match="integer tensor of classes"):
        metrics.classifier_accuracy(model, x, labels.float())
    with pytest.raises(ValueError, match=r"shape \(4,\), one per image, got \(3,\)"):
        metrics.classifier_accuracy(model, x, labels[:3])
