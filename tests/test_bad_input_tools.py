"""Bad input to the GAN, sampling, metrics, display, zoo and runtime tools: each case
either behaves correctly or raises one ValueError / TypeError from gmlib that names
the argument and says what was expected, never an error from deep inside torch."""

import html.parser
import math
import re

import matplotlib
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import gmlib as gm  # noqa: E402
from gmlib import (  # noqa: E402
    gan,
    gan_toy,
    metrics,
    pixelcnn,
    runtime,
    sampling,
    viz,
    widgets,
    zoo,
)

pytestmark = pytest.mark.usefixtures("one_thread")

NAN = float("nan")
U = torch.tensor([0.5])
IMAGES = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
LABELS = torch.tensor([0, 1, 2, 3])
SMALL = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
TOY = dict(hidden=8, layers=1, batch_size=16)


def tiny_generator() -> gan.Generator:
    return gan.Generator(latent_dim=4, channels=2)


def tiny_pixelcnn() -> pixelcnn.PixelCNN:
    return pixelcnn.PixelCNN(levels=4, channels=4, num_layers=1)


class FixedFeatures(nn.Module):
    """A stand-in classifier whose features are given, to test what the Frechet
    distance does with them."""

    num_features = 4

    def __init__(self, make):
        super().__init__()
        self.make = make
        self.scale = nn.Parameter(torch.ones(()))  # a parameter, as a model has

    def features(self, x):
        return self.make(len(x))


class FixedLogits(nn.Module):
    """A stand-in classifier: the one-hot logits of ``answers``, in order."""

    def __init__(self, answers: torch.Tensor, num_classes: int = 10):
        super().__init__()
        self.answers, self.num_classes = answers, num_classes
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        logits = nn.functional.one_hot(self.answers[: len(x)], self.num_classes)
        return logits.float() + self.bias


def case(call, exception, pattern, id):
    return pytest.param(call, exception, pattern, id=id)


# Every public function and constructor of the modules, with input it must refuse.
# Cases marked "fixed" in a comment raised something obscure (or nothing) before.
BAD_INPUT = [
    # --- gm.gan
    case(
        lambda: gan.Generator(latent_dim=0),
        ValueError,
        "latent_dim must be an int >= 1, got 0",
        "gan.Generator-latent_dim=0",
    ),
    case(
        lambda: gan.Generator(channels=-1),
        ValueError,
        "channels must be an int >= 1, got -1",
        "gan.Generator-channels=-1",
    ),
    case(
        lambda: gan.Discriminator(channels=-1),
        ValueError,
        "channels must be an int >= 1, got -1",
        "gan.Discriminator-channels=-1",
    ),
    case(
        lambda: tiny_generator()(torch.zeros(2, 5)),
        ValueError,
        r"codes of shape \(B, 4\), got \(2, 5\)",
        "gan.Generator.forward-z-wrong-width",
    ),
    case(  # fixed: was a RuntimeError from the convolution
        lambda: tiny_generator()(torch.zeros(2, 4, dtype=torch.long)),
        TypeError,
        r"z must be float codes of shape \(B, 4\), got dtype torch.int64",
        "gan.Generator.forward-z-int64",
    ),
    case(  # fixed: was an AttributeError
        lambda: tiny_generator()([[0.0] * 4]),
        TypeError,
        "z must be float codes .* got list",
        "gan.Generator.forward-z-list",
    ),
    case(  # fixed: was a RuntimeError (negative dimension)
        lambda: tiny_generator().sample(-1),
        ValueError,
        "n must be an int >= 1, got -1",
        "gan.Generator.sample-n=-1",
    ),
    case(  # fixed: was a RuntimeError (input type and bias type)
        lambda: gan.Discriminator(channels=2)(
            torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
        ),
        TypeError,
        r"expected float images \(B, 1, 28, 28\) in \[-1, 1\].*torch.uint8",
        "gan.Discriminator.forward-uint8",
    ),
    case(
        lambda: gan.discriminator_loss(torch.zeros(3), torch.zeros(3), kind="wgan"),
        ValueError,
        "kind must be 'standard' or 'least-squares', got 'wgan'",
        "gan.discriminator_loss-unknown-kind",
    ),
    case(
        lambda: gan.generator_loss(torch.zeros(3), kind="wgan"),
        ValueError,
        "unknown generator loss 'wgan'; expected one of 'non-saturating'",
        "gan.generator_loss-unknown-kind",
    ),
    case(  # fixed: (B, 2) logits were averaged as if they were 2B samples
        lambda: gan.generator_loss(torch.zeros(3, 2)),
        ValueError,
        r"fake_logits must hold one logit per sample.*got shape \(3, 2\)",
        "gan.generator_loss-logits-(B,2)",
    ),
    case(  # fixed
        lambda: gan.discriminator_loss(torch.zeros(4, 2), torch.zeros(4)),
        ValueError,
        r"real_logits must hold one logit per sample.*got shape \(4, 2\)",
        "gan.discriminator_loss-real-logits-(B,2)",
    ),
    case(  # fixed
        lambda: gan.generator_loss(torch.tensor(0.0)),
        ValueError,
        r"one logit per sample, shape \(B,\) or \(B, 1\), got shape \(\)",
        "gan.generator_loss-0-d-logits",
    ),
    case(
        lambda: gan.generator_loss(torch.zeros(3, dtype=torch.long)),
        TypeError,
        "fake_logits must be a float tensor of logits, got dtype torch.int64",
        "gan.generator_loss-int-logits",
    ),
    case(  # fixed: uint8 arithmetic wrapped around silently (255 -> 253)
        lambda: gan.to_signed(torch.full((2,), 255, dtype=torch.uint8)),
        TypeError,
        r"to_signed takes a float tensor in \[0, 1\].*gm.data.to_float",
        "gan.to_signed-uint8",
    ),
    case(  # fixed
        lambda: gan.to_unit(torch.tensor([1])),
        TypeError,
        r"to_unit takes a float tensor in \[-1, 1\], got dtype torch.int64",
        "gan.to_unit-int64",
    ),
    case(  # fixed: did nothing, silently
        lambda: gan.init_weights("conv"),
        TypeError,
        r"init_weights takes a torch.nn.Module \(use net.apply\(init_weights\)\)",
        "gan.init_weights-str",
    ),
    # --- gm.gan_toy
    case(
        lambda: gan_toy.ring_centers(0),
        ValueError,
        "modes must be an int >= 1, got 0",
        "gan_toy.ring_centers-modes=0",
    ),
    case(  # fixed: a negative radius was accepted
        lambda: gan_toy.ring_centers(8, -1.0),
        ValueError,
        "radius must be > 0, got -1.0",
        "gan_toy.ring_centers-radius<0",
    ),
    case(  # fixed: gave NaN centres
        lambda: gan_toy.ring_centers(8, NAN),
        ValueError,
        "radius must be > 0, got nan",
        "gan_toy.ring_centers-radius=nan",
    ),
    case(
        lambda: gan_toy.ring_of_gaussians(0),
        ValueError,
        "n must be an int >= 1, got 0",
        "gan_toy.ring_of_gaussians-n=0",
    ),
    case(  # fixed: a negative std was accepted
        lambda: gan_toy.ring_of_gaussians(5, std=-0.1),
        ValueError,
        "std must be a finite number >= 0, got -0.1",
        "gan_toy.ring_of_gaussians-std<0",
    ),
    case(
        lambda: gan_toy.mode_coverage(torch.zeros(3, 2, 1), gan_toy.ring_centers()),
        ValueError,
        r"expected samples \(N, 2\), got \(3, 2, 1\)",
        "gan_toy.mode_coverage-samples-3-d",
    ),
    case(
        lambda: gan_toy.mode_coverage(torch.zeros(0, 2), gan_toy.ring_centers()),
        ValueError,
        r"expected samples \(N, 2\), got \(0, 2\)",
        "gan_toy.mode_coverage-no-samples",
    ),
    case(  # fixed: was a RuntimeError from torch.cdist
        lambda: gan_toy.mode_coverage(torch.zeros(3, 2), torch.zeros(8, 3)),
        ValueError,
        r"expected centers \(modes, 2\).*got \(8, 3\)",
        "gan_toy.mode_coverage-centers-(8,3)",
    ),
    case(  # fixed: was an IndexError
        lambda: gan_toy.mode_coverage(torch.zeros(3, 2), torch.zeros(0, 2)),
        ValueError,
        r"expected centers \(modes, 2\).*got \(0, 2\)",
        "gan_toy.mode_coverage-no-centers",
    ),
    case(  # fixed: was an AttributeError
        lambda: gan_toy.mode_coverage([[0.0, 0.0]], gan_toy.ring_centers()),
        TypeError,
        r"samples must be a float tensor \(N, 2\), got list",
        "gan_toy.mode_coverage-samples-list",
    ),
    case(  # fixed: std=0 silently counted no sample near any mode
        lambda: gan_toy.mode_coverage(torch.zeros(3, 2), gan_toy.ring_centers(), std=0),
        ValueError,
        "std must be > 0, got 0",
        "gan_toy.mode_coverage-std=0",
    ),
    case(  # fixed: layers=-1 silently built a linear network
        lambda: gan_toy.ToyDiscriminator(layers=-1),
        ValueError,
        "layers must be an int >= 1, got -1",
        "gan_toy.ToyDiscriminator-layers=-1",
    ),
    case(  # fixed
        lambda: gan_toy.ToyGenerator(layers=0),
        ValueError,
        "layers must be an int >= 1, got 0",
        "gan_toy.ToyGenerator-layers=0",
    ),
    case(  # fixed: was a RuntimeError from the matrix product
        lambda: gan_toy.ToyDiscriminator(hidden=4, layers=1)(torch.zeros(3, 5)),
        ValueError,
        r"expected points of shape \(B, 2\), got \(3, 5\)",
        "gan_toy.ToyDiscriminator.forward-(3,5)",
    ),
    case(  # fixed
        lambda: gan_toy.ToyGenerator(noise_dim=2, hidden=4, layers=1)(
            torch.zeros(3, 5)
        ),
        ValueError,
        r"expected noise of shape \(B, 2\), got \(3, 5\)",
        "gan_toy.ToyGenerator.forward-(3,5)",
    ),
    # --- gm.sampling
    case(  # fixed: silently drew level 0
        lambda: sampling.inverse_cdf(torch.tensor([[NAN, 2.0]]), U),
        ValueError,
        "logits must be real numbers or -inf with at least one finite value per row",
        "sampling.inverse_cdf-nan-logits",
    ),
    case(  # fixed
        lambda: sampling.inverse_cdf(torch.full((1, 3), -math.inf), U),
        ValueError,
        "got NaN, \\+inf or an all -inf row",
        "sampling.inverse_cdf-all-minus-inf",
    ),
    case(  # fixed
        lambda: sampling.inverse_cdf(torch.tensor([[math.inf, 0.0]]), U),
        ValueError,
        "logits must be real numbers or -inf",
        "sampling.inverse_cdf-plus-inf",
    ),
    case(  # fixed: u = 1 gave the last level, u < 0 the first
        lambda: sampling.inverse_cdf(torch.zeros(1, 2), torch.tensor([1.0])),
        ValueError,
        r"u must lie in \[0, 1\), got values from 1 to 1",
        "sampling.inverse_cdf-u=1",
    ),
    case(  # fixed
        lambda: sampling.inverse_cdf(torch.zeros(1, 2), torch.tensor([NAN])),
        ValueError,
        r"u must lie in \[0, 1\)",
        "sampling.inverse_cdf-u=nan",
    ),
    case(  # fixed: two draws for one row were broadcast
        lambda: sampling.inverse_cdf(torch.zeros(1, 2), torch.tensor([0.1, 0.2])),
        ValueError,
        r"u must be one uniform per row of logits, shape \(1,\), got \(2,\)",
        "sampling.inverse_cdf-u-wrong-length",
    ),
    case(  # fixed
        lambda: sampling.inverse_cdf(torch.zeros(2), U),
        ValueError,
        r"logits must be \(B, L\) with L >= 1 levels, got \(2,\)",
        "sampling.inverse_cdf-1-d-logits",
    ),
    case(  # fixed: returned level -1
        lambda: sampling.inverse_cdf(torch.zeros(1, 0), U),
        ValueError,
        r"logits must be \(B, L\) with L >= 1 levels, got \(1, 0\)",
        "sampling.inverse_cdf-no-levels",
    ),
    case(  # fixed: was an AttributeError
        lambda: sampling.inverse_cdf([[0.0, 1.0]], U),
        TypeError,
        "logits must be a float tensor, got list",
        "sampling.inverse_cdf-list",
    ),
    case(
        lambda: sampling.sample_naive(
            tiny_pixelcnn(), num_samples=0, image_size=(3, 3)
        ),
        ValueError,
        "num_samples must be an int >= 1, got 0",
        "sampling.sample_naive-n=0",
    ),
    case(
        lambda: sampling.sample_fast(
            tiny_pixelcnn(), num_samples=-1, image_size=(3, 3)
        ),
        ValueError,
        "num_samples must be an int >= 1, got -1",
        "sampling.sample_fast-n=-1",
    ),
    case(
        lambda: sampling.sample_naive(tiny_pixelcnn(), num_samples=1, image_size=(28,)),
        ValueError,
        r"image_size must be \(H, W\), got \(28,\)",
        "sampling.sample_naive-image_size-(28,)",
    ),
    case(
        lambda: sampling.sample_fast(tiny_pixelcnn(), num_samples=1, image_size=(0, 3)),
        ValueError,
        r"image_size must be \(H, W\), got \(0, 3\)",
        "sampling.sample_fast-image_size-(0,3)",
    ),
    case(
        lambda: sampling.sample_naive(
            tiny_pixelcnn(),
            given=torch.full((1, 1, 3, 3), 7),
            given_mask=torch.ones(1, 1, 3, 3, dtype=torch.bool),
        ),
        ValueError,
        r"levels must be in 0..3, got values in 7..7",
        "sampling.sample_naive-given-levels-mismatch",
    ),
    case(
        lambda: sampling.sample_fast(
            tiny_pixelcnn(), num_samples=2, uniforms=torch.rand(3, 1, 3, 3)
        ),
        ValueError,
        "the batch sizes disagree",
        "sampling.sample_fast-uniforms-batch-mismatch",
    ),
    case(
        lambda: sampling.sample_naive(
            tiny_generator(), num_samples=1, image_size=(3, 3)
        ),
        TypeError,
        "expected a gmlib autoregressive model, got Generator",
        "sampling.sample_naive-a-GAN-generator",
    ),
    case(
        lambda: sampling.sample_fast("pixelcnn", num_samples=1, image_size=(3, 3)),
        TypeError,
        "expected a gmlib autoregressive model, got str",
        "sampling.sample_fast-model-str",
    ),
    # --- gm.metrics
    case(
        lambda: metrics.frechet_distance(
            IMAGES[:1], IMAGES, classifier=metrics.FeatureClassifier()
        ),
        ValueError,
        r"real must hold at least 2 images, got 1 \(a covariance needs two\)",
        "metrics.frechet_distance-one-real-image",
    ),
    case(
        lambda: metrics.frechet_distance(
            IMAGES, torch.rand(4, 1, 32, 32), classifier=metrics.FeatureClassifier()
        ),
        ValueError,
        r"fake must be images of shape \(N, 1, 28, 28\), got shape \(4, 1, 32, 32\)",
        "metrics.frechet_distance-fake-32x32",
    ),
    case(
        lambda: metrics.frechet_distance(
            torch.full_like(IMAGES, NAN), IMAGES, classifier=metrics.FeatureClassifier()
        ),
        ValueError,
        r"real are float, so their values must lie in \[0, 1\]",
        "metrics.frechet_distance-nan-images",
    ),
    case(  # the shared checks.positive_int now words this
        lambda: metrics.frechet_distance(
            IMAGES, IMAGES, classifier=metrics.FeatureClassifier(), batch_size=0
        ),
        ValueError,
        "batch_size must be an int >= 1, got 0",
        "metrics.frechet_distance-batch_size=0",
    ),
    case(  # fixed: was a RuntimeError inside torchmetrics
        lambda: metrics.frechet_distance(
            IMAGES, IMAGES, classifier=FixedFeatures(lambda n: torch.zeros(n, 5))
        ),
        ValueError,
        r"classifier.features gave shape \(4, 5\) for 4 images; expected \(4, 4\)",
        "metrics.frechet_distance-feature-width-mismatch",
    ),
    case(  # fixed: returned NaN (after a oneMKL error on stderr)
        lambda: metrics.frechet_distance(
            IMAGES, IMAGES, classifier=FixedFeatures(lambda n: torch.full((n, 4), NAN))
        ),
        ValueError,
        "classifier.features gave NaN or infinite values",
        "metrics.frechet_distance-nan-features",
    ),
    case(
        lambda: metrics.classifier_accuracy(
            metrics.FeatureClassifier(), IMAGES.int(), LABELS
        ),
        TypeError,
        r"images must be uint8 \(0..255\) or float in \[0, 1\], got dtype torch.int32",
        "metrics.classifier_accuracy-int32-images",
    ),
    case(
        lambda: metrics.classifier_accuracy(
            metrics.FeatureClassifier(), IMAGES[:, 0], LABELS
        ),
        ValueError,
        r"images must be images of shape \(N, 1, 28, 28\), got shape \(4, 28, 28\)",
        "metrics.classifier_accuracy-3-d-images",
    ),
    case(
        lambda: metrics.classifier_accuracy(
            metrics.FeatureClassifier(), IMAGES, LABELS[:, None]
        ),
        ValueError,
        r"labels must have shape \(4,\), one per image, got \(4, 1\)",
        "metrics.classifier_accuracy-labels-(4,1)",
    ),
    case(
        lambda: metrics.classifier_accuracy(
            metrics.FeatureClassifier(), IMAGES, LABELS.float()
        ),
        TypeError,
        "labels must be an integer tensor of classes, got torch.float32",
        "metrics.classifier_accuracy-float-labels",
    ),
    case(  # fixed: scored 0 silently
        lambda: metrics.classifier_accuracy(
            metrics.FeatureClassifier(), IMAGES, torch.tensor([0, 1, 2, 10])
        ),
        ValueError,
        "unknown class label: labels must be in 0..9, got values in 0..10",
        "metrics.classifier_accuracy-label-10",
    ),
    case(  # fixed
        lambda: metrics.classifier_accuracy(
            metrics.FeatureClassifier(), IMAGES, torch.tensor([0, -1, 2, 3])
        ),
        ValueError,
        r"labels must be in 0..9, got values in -1..3",
        "metrics.classifier_accuracy-label--1",
    ),
    case(  # fixed: was an AttributeError
        lambda: metrics.classifier_accuracy("classifier", IMAGES, LABELS),
        TypeError,
        "model must be a torch.nn.Module classifier, got str",
        "metrics.classifier_accuracy-model-str",
    ),
    case(
        lambda: metrics.feature_classifier(epochs=0),
        ValueError,
        "epochs must be an int >= 1, got 0",
        "metrics.feature_classifier-epochs=0",
    ),
    case(
        lambda: metrics.feature_classifier(epochs=1.5),
        ValueError,
        "epochs must be an int >= 1, got 1.5",
        "metrics.feature_classifier-epochs=1.5",
    ),
    # --- gm.viz
    case(  # fixed: was a ZeroDivisionError in make_grid
        lambda: viz.show_images(SMALL[:0]),
        ValueError,
        r"images is an empty batch \(shape \(0, 1, 8, 8\)\): nothing to show",
        "viz.show_images-empty-batch",
    ),
    case(  # fixed
        lambda: viz.image_grid(torch.zeros(0, 8, 8)),
        ValueError,
        "images is an empty batch",
        "viz.image_grid-empty-batch",
    ),
    case(
        lambda: viz.image_grid(SMALL[None]),
        ValueError,
        r"images must be \(N, C, H, W\) with C in \(1, 3\), or \(N, H, W\); got shape "
        r"\(1, 2, 1, 8, 8\)",
        "viz.image_grid-5-d",
    ),
    case(  # fixed: NaN pixels were drawn as if they were values
        lambda: viz.image_grid(torch.full_like(SMALL, NAN)),
        ValueError,
        r"images hold 128 NaN values: expected float values in \[0, 1\]",
        "viz.image_grid-nan",
    ),
    case(  # fixed: was a ZeroDivisionError
        lambda: viz.image_grid(SMALL, nrow=0),
        ValueError,
        "nrow must be an int >= 1, got 0",
        "viz.image_grid-nrow=0",
    ),
    case(  # fixed
        lambda: viz.show_images(SMALL, nrow=0),
        ValueError,
        "nrow must be an int >= 1, got 0",
        "viz.show_images-nrow=0",
    ),
    case(  # fixed: was a RuntimeError in make_grid
        lambda: viz.image_grid(SMALL, padding=-1),
        ValueError,
        "padding must be an int >= 0, got -1",
        "viz.image_grid-padding=-1",
    ),
    case(  # fixed: was an AttributeError
        lambda: viz.show_images(SMALL, ax="left"),
        TypeError,
        "ax must be a matplotlib Axes or None, got str",
        "viz.show_images-ax-str",
    ),
    case(
        lambda: viz.static_slider([]),
        ValueError,
        "static_slider needs at least one frame",
        "viz.static_slider-no-frames",
    ),
    case(
        lambda: viz.static_slider([SMALL, SMALL], labels=["first"]),
        ValueError,
        "got 2 frames but 1 labels",
        "viz.static_slider-labels-mismatch",
    ),
    case(  # fixed: a str was split into one label per character
        lambda: viz.static_slider([SMALL, SMALL], labels="ab"),
        TypeError,
        "labels must be a sequence of strings, got 'ab'",
        "viz.static_slider-labels-str",
    ),
    case(  # fixed: 0.5 was accepted and broke the page
        lambda: viz.static_slider([SMALL, SMALL], start=0.5),
        ValueError,
        r"start must be an int in 0..1, got 0.5",
        "viz.static_slider-start=0.5",
    ),
    case(  # fixed: was an AttributeError
        lambda: viz.static_slider(["frame.png"]),
        TypeError,
        "each frame must be a matplotlib Figure or an image tensor",
        "viz.static_slider-frame-str",
    ),
    case(  # fixed: was "'NoneType' object is not iterable"
        lambda: viz.static_slider(None),
        TypeError,
        "frames must be a sequence of frames, got NoneType",
        "viz.static_slider-frames-None",
    ),
    case(  # fixed: was an AttributeError
        lambda: viz.plot_curves([1.0, 2.0]),
        TypeError,
        "curves must be a dict of name -> values",
        "viz.plot_curves-list",
    ),
    # --- gm.widgets
    case(  # fixed: named total_steps, which the caller never passed
        lambda: widgets.run_toy_gan(0, **TOY),
        ValueError,
        "steps must be an int >= 1, got 0",
        "widgets.run_toy_gan-steps=0",
    ),
    case(  # fixed: named chunk
        lambda: widgets.run_toy_gan(10, every=0, **TOY),
        ValueError,
        "every must be an int >= 1, got 0",
        "widgets.run_toy_gan-every=0",
    ),
    case(  # fixed: "got multiple values for keyword argument 'chunk'"
        lambda: widgets.run_toy_gan(10, chunk=5, **TOY),
        TypeError,
        "run_toy_gan sets chunk from every: pass every=",
        "widgets.run_toy_gan-chunk",
    ),
    case(  # fixed: silently kept 1000 samples
        lambda: widgets.run_toy_gan(1, n=5000, **TOY),
        ValueError,
        r"n must be at most 1000 \(the fixed noise\), got 5000",
        "widgets.run_toy_gan-n=5000",
    ),
    case(  # fixed: the message said "got nan"
        lambda: widgets.run_toy_gan(1, lr_g="fast", **TOY),
        TypeError,
        "lr_g must be a finite number > 0, got str 'fast'",
        "widgets.run_toy_gan-lr_g-str",
    ),
    # --- gm.zoo
    case(
        lambda: zoo.settings("gan"),
        ValueError,
        "unknown model 'gan'; expected one of pixelcnn-gated, vae-mlp, dcgan",
        "zoo.settings-unknown-model",
    ),
    case(
        lambda: zoo.settings("dcgan", "fast"),
        ValueError,
        "unknown budget 'fast'; expected one of smoke, cpu, full",
        "zoo.settings-unknown-budget",
    ),
    case(  # fixed: was "unknown model 3"
        lambda: zoo.settings(3),
        TypeError,
        "name must be a str, one of pixelcnn-gated, .*; got int",
        "zoo.settings-name-int",
    ),
    case(  # fixed: was "unhashable type: 'list'"
        lambda: zoo.build(["dcgan"], "smoke"),
        TypeError,
        "name must be a str, .*; got list",
        "zoo.build-name-list",
    ),
    case(
        lambda: zoo.load("gan", "smoke"),
        ValueError,
        "unknown model 'gan'",
        "zoo.load-unknown-model",
    ),
    case(
        lambda: zoo.load("dcgan", budget="fast"),
        ValueError,
        "unknown budget 'fast'",
        "zoo.load-unknown-budget",
    ),
    case(
        lambda: zoo.schedule("SMOKE"),
        ValueError,
        "unknown budget 'SMOKE'; expected one of smoke, cpu, full",
        "zoo.schedule-budget-upper-case",
    ),
    # --- gm.runtime
    case(  # fixed: was KeyError: 'fast'
        lambda: gm.settings(smoke={}, cpu={}, full={}, budget_name="fast"),
        ValueError,
        "unknown budget 'fast'; expected one of smoke, cpu, full",
        "runtime.settings-unknown-budget",
    ),
    case(  # fixed: "cannot convert dictionary update sequence element"
        lambda: gm.settings(smoke=[("a", 1)], cpu={"a": 1}, full={"a": 1}),
        TypeError,
        r"smoke must be a dict of settings, e.g. dict\(num_epochs=1\), got list",
        "runtime.settings-smoke-list",
    ),
    case(
        lambda: gm.seed_everything("a"),
        ValueError,
        "seed must be a non-negative int below 2\\*\\*64, got 'a'",
        "runtime.seed_everything-str",
    ),
    case(
        lambda: gm.seed_everything(-1),
        ValueError,
        "seed must be a non-negative int .* got -1",
        "runtime.seed_everything--1",
    ),
    case(  # fixed: was a RuntimeError from torch.manual_seed
        lambda: gm.seed_everything(True),
        ValueError,
        "seed must be a non-negative int .* got True",
        "runtime.seed_everything-bool",
    ),
    case(  # fixed: was torch's "Overflow when unpacking long long"
        lambda: gm.seed_everything(2**64),
        ValueError,
        "seed must be a non-negative int below 2\\*\\*64, got 18446744073709551616",
        "runtime.seed_everything-2**64",
    ),
    case(  # fixed: was a RuntimeError from torch.device
        lambda: runtime.accelerated("tpu"),
        ValueError,
        "dev must be a torch.device or a device name such as 'cpu' or 'cuda', "
        "got 'tpu'",
        "runtime.accelerated-tpu",
    ),
]


@pytest.mark.parametrize("call, exception, pattern", BAD_INPUT)
def test_bad_input_is_refused_with_a_clear_message(call, exception, pattern):
    with pytest.raises(exception, match=pattern) as info:
        call()
    assert type(info.value) is exception  # not a subclass raised deep in torch
    plt.close("all")


ENV_CASES = [
    pytest.param(
        {"GMLIB_BUDGET": "fast"},
        runtime.budget,
        r"GMLIB_BUDGET='fast' is not a budget; expected one of 'smoke' \(.*\), "
        r"'cpu' \(.*\), 'full' \(.*\)",
        id="GMLIB_BUDGET=fast-budget",
    ),
    pytest.param(
        {"GMLIB_BUDGET": "fast"},
        lambda: gm.settings(smoke={}, cpu={}, full={}),
        r"GMLIB_BUDGET='fast' is not a budget; expected one of 'smoke'",
        id="GMLIB_BUDGET=fast-settings",
    ),
    pytest.param(
        {"GMLIB_DEVICE": "tpu"},
        runtime.device,
        "GMLIB_DEVICE='tpu' is not a device gmlib runs on; expected 'cpu', 'cuda'",
        id="GMLIB_DEVICE=tpu-device",
    ),
    pytest.param(
        {"GMLIB_DEVICE": "tpu"},
        runtime.budget,  # the default budget depends on the device
        "GMLIB_DEVICE='tpu' is not a device gmlib runs on",
        id="GMLIB_DEVICE=tpu-budget",
    ),
    pytest.param(
        {"GMLIB_DEVICE": "xla"},  # a torch device type, but not one gmlib supports
        runtime.device,
        "GMLIB_DEVICE='xla' is not a device gmlib runs on",
        id="GMLIB_DEVICE=xla-device",
    ),
    pytest.param(
        {"GMLIB_DEVICE": "cuda"},
        runtime.device,
        r"GMLIB_DEVICE='cuda', but this machine has no CUDA GPU .*GMLIB_DEVICE=cpu",
        id="GMLIB_DEVICE=cuda-without-a-GPU",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here"),
    ),
    pytest.param(
        {"GMLIB_DEVICE": "cuda:7"},
        runtime.device,
        r"GMLIB_DEVICE='cuda:7', but this machine has",
        id="GMLIB_DEVICE=cuda:7",
        marks=pytest.mark.skipif(
            torch.cuda.device_count() > 7, reason="eight GPUs are here"
        ),
    ),
    pytest.param(
        {"GMLIB_DEVICE": "mps"},
        runtime.device,
        "GMLIB_DEVICE='mps', but Apple's MPS is not available here",
        id="GMLIB_DEVICE=mps-without-MPS",
        marks=pytest.mark.skipif(
            torch.backends.mps.is_available(), reason="MPS is here"
        ),
    ),
]


@pytest.mark.parametrize("env, call, pattern", ENV_CASES)
def test_bad_environment_is_refused_with_a_clear_message(
    monkeypatch, env, call, pattern
):
    monkeypatch.delenv("GMLIB_BUDGET", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=pattern):
        call()


def test_device_names_are_read_case_blind(monkeypatch):
    monkeypatch.setenv("GMLIB_DEVICE", " CPU ")
    assert runtime.device() == torch.device("cpu")
    assert runtime.accelerated("cpu") is False


# --- input that is unusual but valid: the right answer, not an error


def reference_inverse_cdf(logits: list[float], u: float) -> int:
    """The smallest k with P(X <= k) > u, in plain Python."""
    weights = [math.exp(v) if v != -math.inf else 0.0 for v in logits]
    total, running = sum(weights), 0.0
    for k, w in enumerate(weights):
        running += w / total
        if running > u:
            return k
    return len(weights) - 1


@pytest.mark.parametrize(
    "logits",
    [
        [math.log(0.2), math.log(0.6)],  # probabilities summing to 0.8
        [math.log(3.0), math.log(1.0), math.log(4.0)],  # summing to 8
        [-5.0, -1.0, -3.0],  # negative logits
        [0.0, -math.inf, 0.0],  # a level of probability 0
    ],
    ids=["sum-0.8", "sum-8", "negative", "minus-inf-level"],
)
def test_inverse_cdf_normalizes_any_logits(logits):
    u = (torch.arange(40) + 0.5) / 40  # 0.0125, 0.0375, ...: never on a step
    rows = torch.tensor([logits] * len(u))
    got = sampling.inverse_cdf(rows, u).tolist()
    assert got == [reference_inverse_cdf(logits, float(v)) for v in u]
    if -math.inf in logits:
        assert logits.index(-math.inf) not in got
    shifted = sampling.inverse_cdf(rows + 7.5, u).tolist()  # softmax ignores a shift
    assert shifted == got


@pytest.mark.parametrize("sampler", [sampling.sample_naive, sampling.sample_fast])
def test_sampling_a_model_with_nan_weights_is_refused(sampler):
    model = tiny_pixelcnn()
    with torch.no_grad():
        next(model.parameters()).fill_(NAN)
    with pytest.raises(ValueError, match="logits .* were NaN or infinite"):
        sampler(model, num_samples=2, image_size=(2, 2))
    healthy = sampler(tiny_pixelcnn(), num_samples=2, image_size=(2, 2))
    assert healthy.shape == (2, 1, 2, 2) and 0 <= healthy.min() <= healthy.max() <= 3


def test_gan_losses_pass_nan_through_and_accept_column_logits():
    # NaN logits are not searched for (that reads the values: a device sync per
    # step); the loss comes out NaN, never a finite number.
    nan = torch.tensor([0.5, NAN])
    assert torch.isnan(gan.generator_loss(nan))
    assert torch.isnan(gan.discriminator_loss(nan, torch.zeros(2)))
    logits = torch.tensor([-1.0, 0.5, 2.0])
    expected = -torch.log(torch.sigmoid(logits)).mean()  # -log D(G(z)), by hand
    torch.testing.assert_close(gan.generator_loss(logits[:, None]), expected)
    torch.testing.assert_close(gan.generator_loss(logits), expected)


def test_generator_takes_float64_codes_and_an_empty_batch():
    g_net = tiny_generator().eval()
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(g_net(z.double()), g_net(z))
    assert g_net(torch.zeros(0, 4)).shape == (0, 1, 28, 28)


def test_mode_coverage_counts_nan_samples_as_near_no_mode():
    centers = gan_toy.ring_centers(4, radius=1.0)
    samples = torch.tensor([[1.0, 0.0], [0.0, 1.0], [NAN, NAN], [NAN, 0.0]])
    cov = gan_toy.mode_coverage(samples, centers)
    assert cov["modes"] == 2 and cov["quality"] == 0.5
    assert math.isnan(cov["distance"])  # a diverged generator is not hidden
    on_centres = gan_toy.ring_of_gaussians(50, modes=4, radius=1.0, std=0)
    assert torch.cdist(on_centres, centers).min(1).values.max() < 1e-6


def test_image_grid_clips_floats_outside_the_unit_range():
    x = torch.linspace(-1, 2, 2 * 8 * 8).view(2, 1, 8, 8)
    grid = viz.image_grid(x, nrow=2, padding=0)
    torch.testing.assert_close(grid[0], torch.cat([x[0, 0], x[1, 0]], 1).clamp(0, 1))
    assert viz.image_grid(x[0, 0][None]).shape == (3, 8, 8)  # one (H, W) image
    fig = viz.show_images(x, nrow=2)
    assert fig.axes[0].images[0].get_array().max() <= 1
    plt.close(fig)


def test_classifier_accuracy_still_counts_valid_labels():
    answers = torch.tensor([0, 1, 9, 3])
    model = FixedLogits(answers)
    assert metrics.classifier_accuracy(model, IMAGES, LABELS) == 0.75  # all but 9
    assert metrics.classifier_accuracy(model, IMAGES, answers) == 1.0


# --- the settings table


class _Cells(html.parser.HTMLParser):
    """The text of each <td>/<th>, and each one's style attribute."""

    def __init__(self):
        super().__init__()
        self.cells, self.styles, self._open = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag in ("td", "th"):
            self._open = True
            self.cells.append("")
            self.styles.append(dict(attrs).get("style", ""))

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._open = False

    def handle_data(self, data):
        if self._open:
            self.cells[-1] += data


def test_settings_table_keeps_tuple_values_in_their_columns():
    cfg = gm.settings(
        smoke=dict(sizes=(16, 32), hidden=(128,), name="<a & b>", epochs=1),
        cpu=dict(sizes=(16, 32), hidden=(512, 256), name="c", epochs=5),
        full=dict(sizes=(32, 64), hidden=(512, 256), name="d", epochs=20),
        budget_name="cpu",
    )
    expected = [
        ["setting", "smoke", "cpu *", "full"],
        ["sizes", "(16, 32)", "(16, 32)", "(32, 64)"],
        ["hidden", "(128,)", "(512, 256)", "(512, 256)"],
        ["name", "'<a & b>'", "'c'", "'d'"],
        ["epochs", "1", "5", "20"],
    ]
    # text: columns are split by gaps of 3+ spaces, wider than any gap in a value
    lines = str(cfg).splitlines()
    assert str(cfg) == repr(cfg)
    assert [re.split(r" {3,}", line) for line in lines[:-1]] == expected
    assert lines[-1] == "(* = the budget in use: cpu)"
    # HTML: one cell per value, escaped, each padded whatever the page's stylesheet
    # does to bare table cells, and free to wrap (a long tuple stays in the column)
    parser = _Cells()
    parser.feed(cfg._repr_html_())
    assert parser.cells == [c for row in expected for c in row]
    for style in parser.styles:
        assert "padding:0.15em 1em" in style and "nowrap" not in style
    assert "&lt;a &amp; b&gt;" in cfg._repr_html_()
    assert cfg["epochs"] == 5
    with pytest.raises(KeyError, match="no setting named 'lr'; settings are: sizes"):
        cfg["lr"]
