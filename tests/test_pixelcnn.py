"""PixelCNN, gated PixelCNN, PixelRNN: masks, causality, exact fast sampling,
likelihoods."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import (
    AffineTransform,
    SigmoidTransform,
    TransformedDistribution,
    Uniform,
)

import gmlib as gm
from gmlib import autoregressive, logistic, pixelcnn, pixelrnn, sampling

H, W = 5, 6  # small and not square, so a swapped axis shows


pytestmark = pytest.mark.usefixtures("one_thread")


def build(kind, *, levels=4, layers=3, classes=None):
    torch.manual_seed(0)
    if kind == "pixelcnn":
        return pixelcnn.PixelCNN(
            levels=levels,
            channels=8,
            num_layers=layers,
            first_kernel_size=3,
            num_classes=classes,
        )
    if kind in ("gated", "gated-wide"):
        return pixelcnn.GatedPixelCNN(
            levels=levels,
            channels=8,
            num_layers=layers,
            first_kernel_size=3 if kind == "gated" else 5,
            num_classes=classes,
        )
    if kind == "logistic":
        return pixelcnn.GatedPixelCNN(
            levels=levels,
            channels=8,
            num_layers=layers,
            first_kernel_size=3,
            num_classes=classes,
            head="logistic",
            mixtures=2,
        )
    return pixelrnn.PixelRNN(levels=levels, hidden_size=16, num_classes=classes)


VARIANTS = [  # (kind, num_classes)
    ("pixelcnn", None),
    ("pixelcnn", 3),
    ("gated", None),
    ("gated", 3),
    ("gated-wide", None),  # a wider first kernel: other crop windows
    ("logistic", None),
    ("rnn", None),
    ("rnn", 3),
]
IDS = [f"{k}{'-classes' if c else ''}" for k, c in VARIANTS]


def labels(model, n):
    return None if model.num_classes is None else torch.arange(n) % model.num_classes


def dependencies(model, h=H, w=W):
    """D[t, s]: does the output at raster position t depend on input pixel s?

    Differentiates a random projection of the logits at each pixel with respect to
    the float image the first layer reads (``forward_embedded``)."""
    gen = torch.Generator().manual_seed(1)
    e = (torch.rand(1, 1, h, w, generator=gen) * 2 - 1).requires_grad_()
    out = model.forward_embedded(e, labels(model, 1))  # (1, L, H, W)
    r = torch.randn(out.shape[1], generator=gen)
    deps = torch.zeros(h * w, h * w, dtype=torch.bool)
    for t in range(h * w):
        (g,) = torch.autograd.grad(
            (out[0, :, t // w, t % w] * r).sum(), e, retain_graph=True
        )
        deps[t] = g.flatten() != 0
    return deps


# --- masks ----------------------------------------------------------------------------


def test_causal_mask_values():
    expected_a5 = torch.tensor(
        [
            [1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1],
            [1, 1, 0, 0, 0],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
        ]
    ).float()
    assert torch.equal(pixelcnn.causal_mask(5, "A"), expected_a5)
    centre = torch.zeros(5, 5)
    centre[2, 2] = 1
    assert torch.equal(pixelcnn.causal_mask(5, "B"), expected_a5 + centre)
    a3 = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]]).float()
    assert torch.equal(pixelcnn.causal_mask(3, "A"), a3)
    assert torch.equal(
        pixelcnn.causal_mask(3, "B"),
        torch.tensor([[1, 1, 1], [1, 1, 0], [0, 0, 0]]).float(),
    )
    assert torch.equal(pixelcnn.causal_mask(1, "A"), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="odd positive int, got 4"):
        pixelcnn.causal_mask(4, "A")
    with pytest.raises(ValueError, match="'A' or 'B', got 'C'"):
        pixelcnn.causal_mask(3, "C")


def test_masked_conv_is_a_conv_with_the_masked_weight():
    torch.manual_seed(0)
    conv = pixelcnn.MaskedConv2d(2, 3, 5, mask_type="A")
    x = torch.randn(4, 2, 7, 6)
    expected = F.conv2d(
        x, conv.weight * pixelcnn.causal_mask(5, "A"), conv.bias, padding=2
    )
    torch.testing.assert_close(conv(x), expected)
    with torch.no_grad():  # the weights under the mask's zeros do not matter
        conv.weight[:, :, 3:] = 1e6
    torch.testing.assert_close(conv(x), expected)
    explicit = pixelcnn.MaskedConv2d(2, 3, (1, 3), mask=torch.tensor([[1.0, 0, 0]]))
    assert explicit.padding == (0, 1) and explicit(x).shape == (4, 3, 7, 6)
    with pytest.raises(ValueError, match="exactly one of mask_type"):
        pixelcnn.MaskedConv2d(1, 1, 3)
    with pytest.raises(ValueError, match="exactly one of mask_type"):
        pixelcnn.MaskedConv2d(1, 1, 3, mask_type="A", mask=torch.ones(3, 3))
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"):
        pixelcnn.MaskedConv2d(1, 1, 3, mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="kernel height must be an odd"):
        pixelcnn.MaskedConv2d(1, 1, 2, mask_type="A")


# --- causality ------------------------------------------------------------------------


@pytest.mark.parametrize("kind, classes", VARIANTS, ids=IDS)
def test_outputs_never_depend_on_the_pixel_itself_or_later_ones(kind, classes):
    model = build(kind, classes=classes)
    deps = dependencies(model)
    later = torch.triu(torch.ones(H * W, H * W, dtype=torch.bool))  # s >= t
    assert not (deps & later).any(), "an output sees its own pixel or a later one"
    assert deps.sum() > H * W  # and it does depend on the past
    # forward on levels is forward_embedded on their embedding: the test is honest
    x = torch.randint(0, 4, (2, 1, H, W))
    y = labels(model, 2)
    torch.testing.assert_close(
        model(x, y), model.forward_embedded(autoregressive.embed_levels(x, 4), y)
    )
    assert model(x, y).shape == (2, 4, H, W)


def test_pixelcnn_has_a_blind_spot_and_the_gated_one_has_none():
    earlier = torch.tril(torch.ones(H * W, H * W, dtype=torch.bool), diagonal=-1)
    plain = dependencies(build("pixelcnn", layers=6))
    # a hole: pixel s is unseen although the pixel right above it, farther away, is
    holes = [
        (t, s)
        for t in range(H * W)
        for s in range(W, t)
        if not plain[t, s] and plain[t, s - W]
    ]
    assert holes, "the plain PixelCNN should have a blind spot"
    t, s = holes[0]
    assert s % W > t % W  # up and to the right of the predicted pixel
    for kind in ("gated", "rnn"):
        deps = dependencies(build(kind, layers=5))
        assert torch.equal(deps, earlier), f"{kind} misses an earlier pixel"


def test_the_gated_stacks_run_alone_on_crops():
    """The vertical stack on the rows that reach row i, the horizontal stack on row i
    alone: the full forward pass's logits of that row (what the fast sampler uses)."""
    model = build("gated-wide", classes=3)
    x = torch.randint(0, 4, (2, 1, 8, 7), generator=torch.Generator().manual_seed(5))
    y = torch.tensor([2, 0])
    e, bias = autoregressive.embed_levels(x, 4), model.class_bias(y)
    full = model(x, y)  # (B, L, H, W)
    reach = model.context_rows
    for i in range(8):
        links = model.vertical_features(e[:, :, max(0, i - reach) : i + 1], bias)
        row = [f[:, :, -1:] for f in links]  # (B, 2C, 1, W) each
        h = model.horizontal_features(e[:, :, i : i + 1], row, bias)
        torch.testing.assert_close(model.head_logits(h)[:, :, 0], full[:, :, i])
    # one row fewer and the crop's top padding reaches the last row: the bound is tight
    links = model.vertical_features(e[:, :, 8 - reach : 8], bias)
    h = model.horizontal_features(e[:, :, 7:8], [f[:, :, -1:] for f in links], bias)
    assert not torch.allclose(model.head_logits(h)[:, :, 0], full[:, :, 7])


# --- sampling -------------------------------------------------------------------------


@pytest.mark.parametrize("kind, classes", VARIANTS, ids=IDS)
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_fast_sampling_is_exact(kind, classes, temperature):
    model = build(kind, classes=classes)  # 7 x 7 > the 3 layers' context: crops used
    gen = torch.Generator().manual_seed(2)
    u = torch.rand(3, 1, 7, 7, generator=gen)
    y = labels(model, 3)
    a, logits_a = sampling.sample_naive(
        model, uniforms=u, y=y, temperature=temperature, return_logits=True
    )
    b, logits_b = sampling.sample_fast(
        model, uniforms=u, y=y, temperature=temperature, return_logits=True
    )
    assert torch.equal(a, b) and a.dtype == torch.long and a.shape == (3, 1, 7, 7)
    torch.testing.assert_close(logits_a, logits_b, atol=1e-4, rtol=0)
    # the logits are the model's own on the sampled image (one pass, causal)
    torch.testing.assert_close(model(a, y), logits_a, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "kind, classes", [("gated", None), ("gated", 3), ("rnn", None)]
)
def test_completion_keeps_the_given_pixels(kind, classes):
    model = build(kind, classes=classes)
    given = torch.randint(
        0, 4, (2, 1, 7, 7), generator=torch.Generator().manual_seed(3)
    )
    mask = torch.zeros(1, 1, 7, 7, dtype=torch.bool)
    mask[..., :3, :] = True  # top rows given, the rest to complete
    mask[..., 3, :2] = True
    u = torch.rand(2, 1, 7, 7, generator=torch.Generator().manual_seed(4))
    kwargs = dict(uniforms=u, y=labels(model, 2), given=given, given_mask=mask)
    a, logits_a = sampling.sample_naive(model, return_logits=True, **kwargs)
    b, logits_b = sampling.sample_fast(model, return_logits=True, **kwargs)
    assert torch.equal(a, b)
    torch.testing.assert_close(logits_a, logits_b, atol=1e-4, rtol=0)
    assert torch.equal(a[mask.expand_as(a)], given[mask.expand_as(given)])


def test_inverse_cdf_temperature_and_seeds():
    probs = torch.tensor([[0.2, 0.5, 0.3]])
    for u, k in [(0.0, 0), (0.19, 0), (0.21, 1), (0.69, 1), (0.71, 2), (0.999, 2)]:
        assert int(sampling.inverse_cdf(probs.log(), torch.tensor([u]))) == k
    # many draws follow the distribution
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(sampling.inverse_cdf(probs.log().expand(20000, 3), u))
    torch.testing.assert_close(counts / 20000, probs[0], atol=0.015, rtol=0)
    # a tiny temperature picks the most likely level at every pixel
    model = build("gated")
    x, logits = sampling.sample_fast(
        model, num_samples=2, image_size=(4, 5), temperature=1e-4, return_logits=True
    )
    assert torch.equal(x[:, 0], logits.argmax(1))
    # the same generator seed gives the same samples
    s1 = sampling.sample_fast(
        model,
        num_samples=2,
        image_size=(4, 5),
        generator=torch.Generator().manual_seed(7),
    )
    s2 = sampling.sample_fast(
        model,
        num_samples=2,
        image_size=(4, 5),
        generator=torch.Generator().manual_seed(7),
    )
    assert torch.equal(s1, s2)


# --- likelihood -----------------------------------------------------------------------


@pytest.mark.parametrize("levels", [2, 4, 256])
@pytest.mark.parametrize("kind", ["pixelcnn", "gated", "rnn"])
def test_a_uniform_model_scores_log2_levels_bits_per_dim(kind, levels):
    model = build(kind, levels=levels)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # logits all zero: uniform over the levels
    x = torch.randint(0, levels, (5, 1, H, W))
    torch.testing.assert_close(
        pixelcnn.nll(model, x), torch.tensor(H * W * math.log(levels))
    )
    bpd = pixelcnn.model_bits_per_dim(model, x, batch_size=2)
    assert bpd == pytest.approx(math.log2(levels), rel=1e-6)


def test_nll_bits_and_loss_match_independent_computations():
    model = build("gated", classes=3)
    x = torch.randint(0, 4, (6, 1, H, W))
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    logits = model(x, y)  # (B, L, H, W)
    categorical = torch.distributions.Categorical(logits=logits.permute(0, 2, 3, 1))
    expected = -categorical.log_prob(x[:, 0]).sum((1, 2)).mean()
    torch.testing.assert_close(pixelcnn.nll(model, x, y), expected)
    expected = expected.detach()
    assert pixelcnn.bits_per_dim(expected, H * W) == pytest.approx(
        float(expected) / (H * W) / math.log(2)
    )
    assert pixelcnn.model_bits_per_dim(model, x, y) == pytest.approx(
        float(expected) / (H * W * math.log(2)), rel=1e-5
    )
    # the fit loss quantizes a float batch in [0, 1]; nats per dimension
    images = torch.randint(0, 256, (6, 1, H, W), dtype=torch.uint8)
    out = pixelcnn.pixelcnn_loss(4)(model, images.float() / 255, y)
    levels = pixelcnn.quantize(images, 4)
    torch.testing.assert_close(out["loss"], pixelcnn.nll(model, levels, y) / (H * W))
    torch.testing.assert_close(out["bits_per_dim"], out["loss"].detach() / math.log(2))
    with pytest.raises(ValueError, match="the loss is for 2 levels, the model has 4"):
        pixelcnn.pixelcnn_loss(2)(model, images.float() / 255, y)


def test_quantize_and_dequantize():
    v = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(pixelcnn.quantize(v, 256), v.long())
    assert torch.equal(pixelcnn.quantize(v, 2), (v >= 128).long())
    assert torch.equal(pixelcnn.quantize(v, 4), v.long() // 64)
    for levels in (2, 3, 4, 10, 256):  # the float form gives the same levels
        q = pixelcnn.quantize(v, levels)
        assert torch.equal(pixelcnn.quantize(v.float() / 255, levels), q)
        assert int(q.min()) == 0 and int(q.max()) == levels - 1
        assert torch.bincount(q).min() >= 256 // levels  # equal-width bins
    torch.testing.assert_close(
        pixelcnn.dequantize(torch.tensor([0, 1, 3]), 4), torch.tensor([0, 1 / 3, 1])
    )
    with pytest.raises(ValueError, match=r"float images in \[0, 1\]"):
        pixelcnn.quantize(torch.full((2,), 1.5), 4)
    with pytest.raises(TypeError, match="uint8 images or floats"):
        pixelcnn.quantize(torch.zeros(2, dtype=torch.int32), 4)
    with pytest.raises(ValueError, match="at most 256 levels"):
        pixelcnn.quantize(v, 512)
    with pytest.raises(TypeError, match="integer tensor of levels"):
        pixelcnn.dequantize(torch.zeros(2), 4)


# --- discretized logistic -------------------------------------------------------------


@pytest.mark.parametrize("levels", [2, 4, 256])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_discretized_logistic_sums_to_one(levels, dtype):
    gen = torch.Generator().manual_seed(0)
    shape = (3, 4, 2, 5)  # (B, K, H, W)
    means = torch.randn(shape, generator=gen, dtype=dtype) * 2
    log_scales = torch.randn(shape, generator=gen, dtype=dtype) * 3
    means[0, :, 0] = torch.tensor([-30.0, 30.0, 0.0, 1.0], dtype=dtype)[:, None]
    log_scales[0, :, 0] = torch.tensor([-20.0, -20.0, 8.0, -7.0], dtype=dtype)[:, None]
    weights = torch.randn(shape, generator=gen, dtype=dtype) * 3
    all_levels = torch.arange(levels).view(levels, 1, 1, 1, 1)
    lp = torch.stack(
        [
            logistic.discretized_logistic_log_prob(
                x.expand(3, 1, 2, 5),
                means,
                log_scales,
                levels=levels,
                logit_weights=weights,
            )
            for x in all_levels
        ]
    )  # (levels, B, 1, H, W)
    assert torch.isfinite(lp).all()
    total = lp.exp().sum(0)
    torch.testing.assert_close(total, torch.ones_like(total), atol=1e-5, rtol=0)
    # the head form: (B, 3K, H, W) -> every level's log-probability
    params = torch.cat([weights, means, log_scales.clamp(min=-7)], dim=1)
    every = logistic.mixture_log_probs(params, levels=levels)  # (B, L, H, W)
    torch.testing.assert_close(
        every.logsumexp(1), torch.zeros(3, 2, 5, dtype=dtype), atol=1e-5, rtol=0
    )
    x = torch.randint(0, levels, (3, 1, 2, 5), generator=gen)
    torch.testing.assert_close(
        every.gather(1, x), logistic.mixture_log_prob(x, params, levels=levels)
    )


def test_discretized_logistic_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    levels = 256
    shape = (2, 1, 3, 4)
    x = torch.randint(0, levels, shape, generator=gen)
    x[0, 0, 0, :2] = torch.tensor([0, levels - 1])  # the two open-ended bins
    centre = x.double() * 2 / (levels - 1) - 1
    half = 1 / (levels - 1)
    log_scales = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.5 - 3
    # within a few scales of the mean, where the direct difference of CDFs is accurate
    z = torch.randn(shape, generator=gen, dtype=torch.float64) * 3
    means = centre - z * log_scales.exp()
    # the logistic distribution: sigmoid^{-1} of a uniform, scaled and shifted
    dist = TransformedDistribution(
        Uniform(torch.zeros(shape, dtype=torch.float64), 1.0),
        [SigmoidTransform().inv, AffineTransform(means, log_scales.exp())],
    )
    upper = torch.where(x == levels - 1, 1.0, dist.cdf(centre + half))
    lower = torch.where(x == 0, 0.0, dist.cdf(centre - half))
    expected = (upper - lower).log()
    got = logistic.discretized_logistic_log_prob(x, means, log_scales, levels=levels)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    # 40 scales away the direct difference of CDFs is 0 (log 0 = -inf); the stable form
    # is still right: close to the density at the bin's centre times its width
    far = x.clamp(1, levels - 2)
    far_centre = far.double() * 2 / (levels - 1) - 1
    s = torch.full(shape, 0.1, dtype=torch.float64)
    far_means = far_centre + 40 * s * torch.where(far > 127, -1.0, 1.0)
    far_dist = TransformedDistribution(
        Uniform(torch.zeros(shape, dtype=torch.float64), 1.0),
        [SigmoidTransform().inv, AffineTransform(far_means, s)],
    )
    direct = far_dist.cdf(far_centre + half) - far_dist.cdf(far_centre - half)
    assert (direct == 0).all()
    midpoint = far_dist.log_prob(far_centre) + math.log(2 * half)
    got = logistic.discretized_logistic_log_prob(far, far_means, s.log(), levels=levels)
    assert torch.isfinite(got).all() and (got < -35).all()
    torch.testing.assert_close(got, midpoint, atol=3e-3, rtol=0)
    # a mixture is the weighted sum of its components' probabilities
    log_scales = log_scales + 2  # wider, so the components overlap
    k_means = torch.cat([means, means + 0.3], dim=1)
    k_scales = torch.cat([log_scales, log_scales + 0.5], dim=1)
    w = (
        torch.tensor([0.3, -0.4], dtype=torch.float64)
        .view(1, 2, 1, 1)
        .expand(2, 2, 3, 4)
    )
    mix = logistic.discretized_logistic_log_prob(
        x, k_means, k_scales, levels=levels, logit_weights=w
    )
    pi = torch.softmax(w, dim=1)
    parts = [
        logistic.discretized_logistic_log_prob(
            x, k_means[:, k : k + 1], k_scales[:, k : k + 1], levels=levels
        ).exp()
        for k in range(2)
    ]
    torch.testing.assert_close(mix, (pi[:, :1] * parts[0] + pi[:, 1:] * parts[1]).log())


def test_logistic_head_model_gives_normalized_logits():
    model = build("logistic", levels=256)
    x = torch.randint(0, 256, (2, 1, H, W))
    logits = model(x)  # log-probabilities of every level
    torch.testing.assert_close(
        logits.logsumexp(1), torch.zeros(2, H, W), atol=1e-4, rtol=0
    )
    expected = logits.gather(1, x).sum((1, 2, 3))
    torch.testing.assert_close(model.log_prob(x), expected, atol=1e-3, rtol=1e-5)


# --- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pixelcnn", "gated", "rnn"])
def test_bad_input_is_explained(kind):
    model = build(kind, classes=3)
    y = torch.tensor([0, 1])
    with pytest.raises(TypeError, match="integer pixel levels 0..3.*quantize"):
        model(torch.rand(2, 1, H, W), y)
    with pytest.raises(ValueError, match=r"levels must be in 0..3, got values in 0..4"):
        model(torch.tensor([0, 4]).view(2, 1, 1, 1).expand(2, 1, H, W), y)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\), got \(2, 5, 6\)"):
        model(torch.zeros(2, H, W, dtype=torch.long), y)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\), got \(2, 3, 5, 6\)"):
        model(torch.zeros(2, 3, H, W, dtype=torch.long), y)
    x = torch.zeros(2, 1, H, W, dtype=torch.long)
    with pytest.raises(
        ValueError, match="unknown class label.*0..2, got values in 1..3"
    ):
        model(x, torch.tensor([1, 3]))
    with pytest.raises(ValueError, match="class-conditional"):
        model(x)
    with pytest.raises(ValueError, match="got 3 labels for 2 images"):
        model(x, torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="integer labels"):
        model(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="no classes"):
        build(kind)(x, y)
    with pytest.raises(TypeError, match="float embedded image"):
        model.forward_embedded(x, y)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\), got \(2, 5, 6\)"):
        model.forward_embedded(torch.zeros(2, H, W), y)


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (pixelcnn.PixelCNN, {"levels": 1}, "levels must be an int >= 2, got 1"),
        (pixelcnn.PixelCNN, {"levels": 4, "channels": 0}, "channels must be an int"),
        (pixelcnn.PixelCNN, {"levels": 4, "num_layers": -1}, "num_layers must be"),
        (
            pixelcnn.PixelCNN,
            {"levels": 4, "kernel_size": 4},
            "kernel_size must be an odd",
        ),
        (pixelcnn.PixelCNN, {"levels": 4, "num_classes": 0}, "num_classes must be"),
        (pixelcnn.GatedPixelCNN, {"levels": 2.5}, "levels must be an int"),
        (pixelcnn.GatedPixelCNN, {"levels": 4, "channels": 0}, "channels must be"),
        (
            pixelcnn.GatedPixelCNN,
            {"levels": 4, "kernel_size": 0},
            "kernel_size must be",
        ),
        (pixelcnn.GatedPixelCNN, {"levels": 4, "head": "gauss"}, "head must be one of"),
        (pixelcnn.GatedPixelCNN, {"levels": 4, "mixtures": 0}, "mixtures must be"),
        (pixelrnn.PixelRNN, {"levels": 4, "hidden_size": 0}, "hidden_size must be"),
        (pixelrnn.PixelRNN, {"levels": 4, "num_layers": 0}, "num_layers must be"),
    ],
)
def test_bad_sizes_are_explained(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_sizes_are_keyword_only_and_sampler_arguments_checked():
    with pytest.raises(TypeError):
        pixelcnn.GatedPixelCNN(4)
    model = build("gated")
    with pytest.raises(ValueError, match="pass num_samples"):
        sampling.sample_fast(model, image_size=(4, 4))
    with pytest.raises(ValueError, match=r"pass image_size=\(H, W\)"):
        sampling.sample_fast(model, num_samples=2)
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        sampling.sample_fast(model, num_samples=2, image_size=(4, 4), temperature=0)
    with pytest.raises(ValueError, match="both given and given_mask"):
        sampling.sample_naive(model, given=torch.zeros(2, 1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="batch sizes disagree"):
        sampling.sample_fast(model, num_samples=3, uniforms=torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="image sizes disagree"):
        sampling.sample_fast(model, image_size=(5, 5), uniforms=torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="no classes"):
        sampling.sample_fast(model, image_size=(4, 4), y=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="unknown class label"):
        sampling.sample_fast(
            build("gated", classes=3), image_size=(4, 4), y=torch.tensor([5])
        )
    with pytest.raises(TypeError, match="autoregressive model"):
        sampling.sample_fast(torch.nn.Conv2d(1, 1, 1), num_samples=1, image_size=(4, 4))


# --- training -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, classes", [("gated", None), ("pixelcnn", 10), ("rnn", None)]
)
def test_the_loss_trains_with_fit(kind, classes):
    images, targets = gm.load("digits", split="train", limit=384)
    model = build(kind, classes=classes, layers=3)
    history = gm.fit(
        model,
        images,
        loss_fn=pixelcnn.pixelcnn_loss(4),
        labels=targets if classes else None,
        num_epochs=2,
        batch_size=64,
        lr=3e-3,
        seed=0,
    )
    assert history.loss[-1] < history.loss[0]
    assert history.epochs["bits_per_dim"][-1] == pytest.approx(
        history.loss[-1] / math.log(2), rel=1e-4
    )
    test = pixelcnn.quantize(gm.load("digits", split="test", limit=64).images, 4)
    y = gm.load("digits", split="test", limit=64).labels if classes else None
    assert pixelcnn.model_bits_per_dim(model, test, y) < 2.0  # uniform: log2(4) = 2
