"""Properties of the models' forward passes and losses over random shapes and dtypes
(hypothesis, derandomized so every run draws the same examples): documented output
shapes, finite values, signs (a KL is >= 0, a discrete log-likelihood <= 0), losses
that are means of per-example losses and do not depend on the batch order, and
quantize/dequantize round trips."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gmlib import autoencoder as ae
from gmlib import autoregressive as ar
from gmlib import diffusion as df
from gmlib import diffusion_elbo as de
from gmlib import gaussians as ga
from gmlib import linear_gaussian as lg
from gmlib import logistic as lo
from gmlib import pixelcnn as pc
from gmlib import pixelrnn as pr
from gmlib import unet as un
from gmlib import vae

pytestmark = pytest.mark.usefixtures("one_thread")

FEW = settings(max_examples=8, deadline=None, derandomize=True)
SOME = settings(max_examples=25, deadline=None, derandomize=True)

batches = st.integers(1, 5)
channels = st.integers(1, 3)
float_dtypes = st.sampled_from([torch.float16, torch.bfloat16, torch.float64])


def _images(seed: int, b: int, c: int, h: int, w: int) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> bool:
    return bool(torch.allclose(a, b, rtol=tol, atol=tol))


# --- autoencoders ---------------------------------------------------------------------


def _autoencoder(kind: str, c: int, size: int):
    torch.manual_seed(0)
    shape = (c, size, size)
    if kind == "linear":
        return ae.LinearAutoencoder(image_shape=shape, latent_dim=2)
    if kind == "mlp":
        return ae.MLPAutoencoder(image_shape=shape, hidden_dims=(6,), latent_dim=3)
    return ae.ConvAutoencoder(image_shape=shape, channels=(3,), latent_dim=3)


@FEW
@given(
    kind=st.sampled_from(["linear", "mlp", "conv"]),
    b=batches,
    c=channels,
    half=st.integers(1, 4),
    loss=st.sampled_from(["mse", "bce"]),
)
def test_autoencoder_shapes_and_a_loss_that_is_a_mean_over_the_batch(
    kind, b, c, half, loss
):
    size = 2 * half  # the conv model halves once
    model = _autoencoder(kind, c, size)
    x = _images(b, b, c, size, size)
    z = model.encode(x)
    assert z.shape == (b, model.latent_dim) and _finite(z)
    out = model(x)
    assert out.shape == (b, c, size, size) and _finite(out)
    if model.sigmoid_output:
        assert bool(((out >= 0) & (out <= 1)).all())
    if loss == "bce" and not model.sigmoid_output:
        return
    value = ae.reconstruction_loss(model, x, kind=loss)
    assert value.shape == () and _finite(value)
    assert float(value.detach()) >= 0  # squared error, and BCE of targets in [0, 1]
    singles = torch.stack(
        [ae.reconstruction_loss(model, x[i : i + 1], kind=loss) for i in range(b)]
    )
    assert _close(value, singles.mean())
    perm = torch.randperm(b, generator=torch.Generator().manual_seed(1))
    assert _close(ae.reconstruction_loss(model, x[perm], kind=loss), value)


@FEW
@given(kind=st.sampled_from(["linear", "mlp", "conv"]), dtype=float_dtypes)
def test_autoencoders_read_images_of_any_float_precision(kind, dtype):
    model = _autoencoder(kind, 1, 4)
    x = _images(0, 2, 1, 4, 4)
    reference = model(x)
    out = model(x.to(dtype))  # cast to the parameters' float32
    assert out.dtype == torch.float32 and out.shape == (2, 1, 4, 4)
    tol = 1e-6 if dtype == torch.float64 else 5e-2
    assert _close(out, reference, tol)


# --- VAEs and Gaussians ---------------------------------------------------------------


@FEW
@given(
    conv=st.booleans(),
    b=batches,
    c=channels,
    likelihood=st.sampled_from(vae.LIKELIHOODS),
)
def test_vae_terms_have_their_shapes_and_signs(conv, b, c, likelihood):
    torch.manual_seed(0)
    shape = (c, 4, 4)
    if conv:
        model = vae.ConvVAE(
            image_shape=shape, channels=(2,), latent_dim=2, likelihood=likelihood
        )
    else:
        model = vae.MLPVAE(
            image_shape=shape, hidden_dims=(6,), latent_dim=2, likelihood=likelihood
        )
    x = vae.binarize(_images(b, b, *shape), generator=torch.Generator().manual_seed(2))
    terms = vae.elbo(model, x, generator=torch.Generator().manual_seed(3))
    for name in ("reconstruction", "kl", "elbo"):
        assert terms[name].shape == (b,) and _finite(terms[name]), name
    assert bool((terms["kl"] >= 0).all())
    if likelihood == "bernoulli":  # a probability of a discrete image
        assert bool((terms["reconstruction"] <= 0).all())
        assert bool((terms["elbo"] <= 0).all())
    losses = vae.loss(model, x, generator=torch.Generator().manual_seed(3))
    assert losses["loss"].shape == () and _close(losses["loss"], -terms["elbo"].mean())
    # the KL is deterministic: per image, in any order
    mu, logvar = model.encode(x)
    perm = torch.randperm(b, generator=torch.Generator().manual_seed(1))
    assert _close(ga.kl_normal(*model.encode(x[perm])), ga.kl_normal(mu, logvar)[perm])
    assert model.sample(b).shape == (b, *shape)


gaussian_params = st.lists(
    st.floats(-3, 3, allow_nan=False, width=32), min_size=2, max_size=8
)


@SOME
@given(mu=gaussian_params, logvar=gaussian_params)
def test_kl_normal_is_nonnegative_and_zero_only_at_the_prior(mu, logvar):
    k = min(len(mu), len(logvar))
    m = torch.tensor(mu[:k], dtype=torch.float64)
    lv = torch.tensor(logvar[:k], dtype=torch.float64)
    kl = ga.kl_normal(m, lv)
    assert float(kl) >= 0
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(m, (0.5 * lv).exp()),
        torch.distributions.Normal(torch.zeros(k, dtype=m.dtype), 1.0),
    ).sum()
    assert math.isclose(float(kl), float(reference), rel_tol=1e-9, abs_tol=1e-12)
    at_prior = bool((m == 0).all() and (lv == 0).all())
    assert (float(kl) == 0) == at_prior
    assert float(ga.kl_normal(torch.zeros(k), torch.zeros(k))) == 0


@FEW
@given(b=batches, k=st.integers(1, 4), dtype=float_dtypes)
def test_gaussian_functions_keep_the_float_dtype_they_are_given(b, k, dtype):
    mu = torch.zeros(b, k, dtype=dtype)
    z = ga.reparameterize(mu, mu, generator=torch.Generator().manual_seed(0))
    assert z.dtype == dtype and z.shape == (b, k)
    assert ga.kl_normal(mu, mu).dtype == dtype
    assert ga.log_normal(z).shape == (b,)


@FEW
@given(D=st.integers(1, 5), k=st.integers(1, 3), seed=st.integers(0, 99))
def test_linear_gaussian_elbo_never_exceeds_the_evidence(D, k, seed):
    g = torch.Generator().manual_seed(seed)
    model = lg.LinearGaussian.random(D, k, generator=g)
    x, _ = model.sample(3, generator=g)
    mu = torch.randn(3, k, generator=g, dtype=torch.float64)
    logvar = torch.randn(3, k, generator=g, dtype=torch.float64)
    gap = model.log_evidence(x) - model.elbo(x, mu, logvar)
    assert bool((gap >= -1e-9).all())
    assert _close(gap, model.kl_to_posterior(x, mu, logvar), 1e-6)


# --- autoregressive models ------------------------------------------------------------


def _autoregressive(kind: str, levels: int, num_classes=None):
    torch.manual_seed(0)
    if kind == "pixelcnn":
        return pc.PixelCNN(
            levels=levels, channels=4, num_layers=2, num_classes=num_classes
        )
    if kind == "pixelrnn":
        return pr.PixelRNN(levels=levels, hidden_size=4, num_classes=num_classes)
    head = "logistic" if kind == "gated-logistic" else "categorical"
    return pc.GatedPixelCNN(
        levels=levels,
        channels=4,
        num_layers=2,
        head=head,
        mixtures=2,
        num_classes=num_classes,
    )


AR_KINDS = ["pixelcnn", "gated", "gated-logistic", "pixelrnn"]


@FEW
@given(
    kind=st.sampled_from(AR_KINDS),
    b=batches,
    levels=st.integers(2, 8),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    conditional=st.booleans(),
)
def test_autoregressive_models_give_logits_and_a_discrete_log_likelihood(
    kind, b, levels, h, w, conditional
):
    model = _autoregressive(kind, levels, 3 if conditional else None)
    g = torch.Generator().manual_seed(b * 100 + h * 10 + w)
    x = torch.randint(0, levels, (b, 1, h, w), generator=g)
    y = torch.randint(0, 3, (b,), generator=g) if conditional else None
    logits = model(x, y)
    assert logits.shape == (b, levels, h, w) and _finite(logits)
    log_p = model.log_prob(x, y)
    assert log_p.shape == (b,) and _finite(log_p)
    assert bool((log_p <= 0).all())  # the log-probability of a discrete image
    perm = torch.randperm(b, generator=g)
    assert _close(model.log_prob(x[perm], None if y is None else y[perm]), log_p[perm])
    assert _close(ar.nll(model, x, y), -log_p.mean())
    loss = ar.pixelcnn_loss()(model, ar.dequantize(x, levels), y)
    assert loss["loss"].shape == () and float(loss["loss"].detach()) >= 0


MODEL_KINDS = ["mlp", "conv", "vae", *AR_KINDS, "unet", "mlp-denoiser"]


def _forward(kind: str, dtype: torch.dtype, b: int) -> torch.Tensor:
    """The model of ``kind``, converted to ``dtype``, on float32 or integer input."""
    g = torch.Generator().manual_seed(b)
    images = torch.rand(b, 1, 4, 4, generator=g)
    t = torch.randint(0, 10, (b,), generator=g)
    if kind in ("mlp", "conv"):
        return _autoencoder(kind, 1, 4).to(dtype)(images)
    if kind == "vae":
        torch.manual_seed(0)
        model = vae.MLPVAE(image_shape=(1, 4, 4), hidden_dims=(6,), latent_dim=2)
        return vae.elbo(model.to(dtype), (images > 0.5).float())["elbo"]
    if kind == "unet":
        torch.manual_seed(0)
        return un.UNet(channels=8).to(dtype)(images, t)
    if kind == "mlp-denoiser":
        torch.manual_seed(0)
        return un.MLPDenoiser(hidden=8).to(dtype)(images[:, 0, 0, :2], t)
    levels = torch.randint(0, 4, (b, 1, 3, 3), generator=g)
    return _autoregressive(kind, 4).to(dtype).log_prob(levels)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("kind", MODEL_KINDS)
@settings(max_examples=2, deadline=None, derandomize=True)
@given(b=batches)
def test_models_in_any_float_precision_work(kind, dtype, b):
    """float16, bfloat16 and float64 models all run on the CPU and give finite values:
    outputs in the model's dtype, log-likelihoods in at least float32, the VAE's terms
    in the precision of its float32 images."""
    out = _forward(kind, dtype, b)
    assert len(out) == b and _finite(out)
    if kind == "vae":
        expected = torch.float32
    elif kind in AR_KINDS:
        expected = torch.promote_types(dtype, torch.float32)
    else:
        expected = dtype
    assert out.dtype == expected


@SOME
@given(levels=st.integers(2, 256))
def test_quantize_and_dequantize_round_trip(levels):
    k = torch.arange(levels)
    shown = ar.dequantize(k, levels)
    assert float(shown[0]) == 0 and float(shown[-1]) == 1
    assert bool((shown[1:] > shown[:-1]).all())
    back = ar.quantize(shown, levels)
    # quantize's equal-width bins and dequantize's evenly spaced values agree to one
    # level, and exactly for the level counts the course uses (<= 27, powers of two)
    assert int((back - k).abs().max()) <= 1
    if levels <= 27 or levels & (levels - 1) == 0:
        assert torch.equal(back, k)
    pixels = torch.arange(256, dtype=torch.uint8)
    q = ar.quantize(pixels, levels)
    assert int(q.min()) == 0 and int(q.max()) == levels - 1
    assert bool((q[1:] >= q[:-1]).all())
    assert torch.equal(ar.quantize(pixels.float() / 255, levels), q)


@FEW
@given(levels=st.integers(2, 16), k=st.integers(1, 3), b=batches)
def test_logistic_mixture_probabilities_sum_to_one(levels, k, b):
    params = torch.randn(b, 3 * k, 2, 2, generator=torch.Generator().manual_seed(k))
    log_probs = lo.mixture_log_probs(params, levels=levels)
    assert log_probs.shape == (b, levels, 2, 2)
    assert bool((log_probs <= 1e-6).all())
    assert _close(log_probs.logsumexp(1), torch.zeros(b, 2, 2), 1e-5)


# --- diffusion ------------------------------------------------------------------------


@FEW
@given(
    b=batches,
    c=channels,
    size=st.sampled_from([4, 8]),
    width=st.integers(1, 5),
    conditional=st.booleans(),
)
def test_unet_predicts_noise_of_the_image_shape(b, c, size, width, conditional):
    torch.manual_seed(0)
    net = un.UNet(
        image_channels=c, channels=2 * width, num_classes=3 if conditional else None
    )
    x = torch.randn(b, c, size, size)
    t = torch.randint(0, 10, (b,))
    y = torch.randint(0, 4, (b,)) if conditional else None  # 3 is the null class
    mid = 4 * width  # the channels at H/4 x W/4, in GroupNorm groups of up to 8
    if b * mid // math.gcd(8, mid) * (size // 4) ** 2 == 1:
        with pytest.raises(ValueError, match="too small for this U-Net"):
            net(x, t, y)  # GroupNorm cannot normalize one value
        return
    eps = net(x, t, y) if conditional else net(x, t)
    assert eps.shape == x.shape and _finite(eps)
    schedule = df.Schedule.cosine(10)
    loss = df.loss(net, schedule, torch.rand(b, c, size, size), y)
    assert loss.shape == () and _finite(loss) and float(loss.detach()) >= 0


@FEW
@given(b=batches, dim=st.integers(1, 4), hidden=st.integers(1, 9))
def test_mlp_denoiser_keeps_the_shape_of_its_points(b, dim, hidden):
    torch.manual_seed(0)
    net = un.MLPDenoiser(dim=dim, hidden=hidden, layers=2)
    out = net(torch.randn(b, dim), torch.randint(0, 10, (b,)))
    assert out.shape == (b, dim) and _finite(out)


@FEW
@given(dtype=float_dtypes, b=batches)
def test_denoisers_read_inputs_of_any_float_precision(dtype, b):
    torch.manual_seed(0)
    net = un.UNet(channels=4)
    x = torch.randn(b, 1, 8, 8)
    t = torch.randint(0, 10, (b,))
    out = net(x.to(dtype), t)  # cast to the parameters' float32
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert _close(out, net(x, t), 1e-6 if dtype == torch.float64 else 0.2)
    toy = un.MLPDenoiser(hidden=8)
    assert toy(torch.zeros(b, 2, dtype=dtype), t).dtype == torch.float32


@FEW
@given(
    b=batches,
    T=st.integers(2, 30),
    cosine=st.booleans(),
    seed=st.integers(0, 99),
)
def test_forward_process_and_bound_keep_shapes_and_signs(b, T, cosine, seed):
    schedule = df.Schedule.cosine(T) if cosine else df.Schedule.linear(max(T, 21))
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(b, 1, 4, 4, generator=g) * 2 - 1
    t = torch.randint(0, schedule.T, (b,), generator=g)
    x_t = schedule.q_sample(x0, t)
    assert x_t.shape == x0.shape and _finite(x_t)
    mean, var = schedule.posterior(x_t, x0, t)
    assert mean.shape == var.shape == x0.shape and bool((var >= 0).all())
    images = torch.randint(0, 256, (b, 1, 4, 4), generator=g, dtype=torch.uint8)
    bound = de.nll_bound(
        lambda x, t: torch.zeros_like(x), schedule, images, timesteps=1, generator=g
    )
    for name in ("prior", "diffusion", "decoder", "total", "bits_per_dim"):
        assert bound[name].shape == (b,) and _finite(bound[name]), name
        assert bool((bound[name] >= 0).all()), name  # KLs and -log P(discrete)


@SOME
@given(
    mean=st.floats(-2, 2, allow_nan=False),
    std=st.floats(0.01, 2, allow_nan=False),
)
def test_discretized_gaussian_is_a_distribution_over_the_256_levels(mean, std):
    x = torch.arange(256, dtype=torch.float64) * 2 / 255 - 1
    log_p = de.discretized_gaussian_log_prob(x, torch.full_like(x, mean), std)
    assert bool((log_p <= 0).all())
    assert math.isclose(float(log_p.logsumexp(0)), 0.0, abs_tol=1e-9)
