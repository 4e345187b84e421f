"""VAEs and the exact linear-Gaussian model: KL and log-densities, the ELBO identity,
reparameterized gradients, importance-weighted bounds, the loss, the models, bad input.

Every Monte Carlo check has a tolerance derived from the estimator's own standard error
(a few standard errors wide), and a fixed seed, so it is deterministic."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, MultivariateNormal, Normal, kl_divergence

import gmlib as gm
from gmlib import vae
from gmlib.linear_gaussian import LinearGaussian

Z = 5.0  # tolerance of a Monte Carlo check, in standard errors


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def random_gaussian(shape, seed, dtype=torch.float64):
    """Random ``mu`` and ``logvar`` of ``shape``, logvar in [-2, 1]."""
    g = gen(seed)
    mu = torch.randn(shape, generator=g, dtype=dtype)
    logvar = torch.rand(shape, generator=g, dtype=dtype) * 3 - 2
    return mu, logvar


def binary_images(n, shape, seed):
    g = gen(seed)
    return vae.binarize(torch.rand(n, *shape, generator=g), generator=g)


def mlp_vae(shape=(1, 8, 8), latent_dim=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    return vae.MLPVAE(
        image_shape=shape, hidden_dims=(32,), latent_dim=latent_dim, **kwargs
    )


def orthogonal_model(D=6, k=3, seed=0):
    """A linear-Gaussian model with orthogonal columns in W, so that W^T W and hence
    the posterior covariance (I + W^T W / sigma^2)^-1 are diagonal."""
    g = gen(seed)
    q, _ = torch.linalg.qr(torch.randn(D, k, generator=g, dtype=torch.float64))
    scales = torch.tensor([0.5, 1.5, 3.0], dtype=torch.float64)[:k]
    b = torch.randn(D, generator=g, dtype=torch.float64)
    return LinearGaussian(q * scales, b, 0.3)


def conditional_posterior(lg, x):
    """p(z | x) by conditioning the joint Gaussian of (z, x), mean (0, b), covariance
    [[I, W^T], [W, W W^T + s2 I]]: mean W^T C^-1 (x - b), covariance
    I - W^T C^-1 W with C = W W^T + s2 I (the D x D route, not the module's k x k
    one)."""
    W = lg.W
    C = W @ W.T + lg.sigma2 * torch.eye(lg.D, dtype=W.dtype)
    CinvW = torch.linalg.solve(C, W)  # (D, k)
    mean = (x - lg.b) @ CinvW  # (..., k)
    cov = torch.eye(lg.k, dtype=W.dtype) - W.T @ CinvW
    return mean, cov


# --- KL and log-densities -------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1,), (4,), (3, 5), (2, 3, 4)])
def test_kl_normal_matches_torch_distributions(shape):
    mu, logvar = random_gaussian(shape, seed=len(shape))
    q = Normal(mu, torch.exp(0.5 * logvar))
    expected = kl_divergence(q, Normal(0.0, 1.0)).sum(-1)
    kl = vae.kl_normal(mu, logvar)
    assert kl.shape == shape[:-1], f"KL should sum the last dim, got {kl.shape}"
    torch.testing.assert_close(kl, expected, rtol=1e-10, atol=1e-12)
    per_dim = vae.kl_normal(mu, logvar, per_dim=True)
    assert per_dim.shape == shape
    torch.testing.assert_close(per_dim.sum(-1), kl, rtol=1e-12, atol=1e-12)
    assert bool((per_dim >= 0).all()), "every per-dimension KL must be >= 0"


def test_kl_normal_is_zero_only_at_the_prior():
    zero = torch.zeros(3, 4)
    assert torch.equal(vae.kl_normal(zero, zero), torch.zeros(3)), "KL(p || p) = 0"
    mu, logvar = random_gaussian((200, 4), seed=1)
    assert bool((vae.kl_normal(mu, logvar) > 0).all()), "KL must be > 0 off the prior"
    # one coordinate moved is enough to make it positive
    assert float(vae.kl_normal(torch.tensor([0.0, 1e-3]), torch.zeros(2))) > 0
    assert float(vae.kl_normal(torch.zeros(2), torch.tensor([0.0, 1e-2]))) > 0


def test_kl_normal_matches_monte_carlo():
    mu, logvar = random_gaussian((4,), seed=2)
    sigma = torch.exp(0.5 * logvar)
    S = 200_000
    z = mu + sigma * torch.randn(S, 4, generator=gen(3), dtype=torch.float64)
    log_ratio = (Normal(mu, sigma).log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1)
    estimate = log_ratio.mean()
    stderr = log_ratio.std() / math.sqrt(S)
    kl = vae.kl_normal(mu, logvar)
    assert abs(float(kl - estimate)) < Z * float(stderr), (
        f"closed-form KL {float(kl):.5f} vs Monte Carlo {float(estimate):.5f} "
        f"+- {float(stderr):.5f}"
    )
    assert Z * float(stderr) < 0.02 * float(kl), "the check must be tight enough"


@pytest.mark.parametrize("shape", [(3,), (5, 3), (2, 4, 3)])
def test_log_normal_matches_torch_distributions(shape):
    mu, logvar = random_gaussian(shape, seed=4)
    z = torch.randn(shape, generator=gen(5), dtype=torch.float64)
    expected = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    torch.testing.assert_close(vae.log_normal(z, mu, logvar), expected)
    # the defaults are the prior N(0, I)
    torch.testing.assert_close(vae.log_normal(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


# --- the linear-Gaussian model, exactly -----------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_evidence_is_elbo_plus_kl_to_posterior(seed):
    lg = LinearGaussian.random(5, 3, sigma2=0.4, generator=gen(seed))
    x, _ = lg.sample(4, generator=gen(seed + 10))  # (4, D)
    mu, logvar = random_gaussian((6, 4, 3), seed=seed + 20)  # 6 q's for each x
    elbo = lg.elbo(x, mu, logvar)
    kl = lg.kl_to_posterior(x, mu, logvar)
    assert elbo.shape == kl.shape == (6, 4)
    log_px = lg.log_evidence(x)
    torch.testing.assert_close(elbo + kl, log_px.expand(6, 4), rtol=0, atol=1e-5)
    # a generic W has a full-covariance posterior: no diagonal q reaches it
    assert bool((kl > 0).all()) and bool((elbo < log_px).all())


def test_elbo_is_tight_at_the_true_posterior():
    lg = orthogonal_model()
    x, _ = lg.sample(5, generator=gen(1))
    post = lg.posterior(x)
    cov = post.covariance_matrix  # (5, k, k), the same for every x
    var = torch.diagonal(cov, dim1=-2, dim2=-1)  # (5, k)
    torch.testing.assert_close(cov, torch.diag_embed(var), rtol=0, atol=1e-12)
    mu, logvar = post.mean, var.log()
    torch.testing.assert_close(
        lg.elbo(x, mu, logvar), lg.log_evidence(x), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(
        lg.kl_to_posterior(x, mu, logvar),
        torch.zeros(5, dtype=x.dtype),
        atol=1e-8,
        rtol=0,
    )
    # moving q off the posterior opens a gap
    gap = lg.log_evidence(x) - lg.elbo(x, mu + 0.1, logvar)
    assert bool((gap > 1e-3).all()), f"the ELBO should drop off the posterior: {gap}"


def test_expected_log_likelihood_matches_monte_carlo():
    lg = LinearGaussian.random(5, 3, generator=gen(3))
    x, _ = lg.sample(4, generator=gen(4))
    mu, logvar = random_gaussian((4, 3), seed=5)
    S = 100_000
    z = vae.reparameterize(mu, logvar, num_samples=S, generator=gen(6))  # (S, 4, 3)
    ll = lg.log_likelihood(x, z)  # (S, 4)
    estimate, stderr = ll.mean(0), ll.std(0) / math.sqrt(S)
    exact = lg.expected_log_likelihood(x, mu, logvar)
    assert exact.shape == (4,)
    assert bool(((exact - estimate).abs() < Z * stderr).all()), (
        f"closed form {exact} vs Monte Carlo {estimate} +- {stderr}"
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_posterior_matches_joint_gaussian_conditioning(seed):
    lg = LinearGaussian.random(6, 3, sigma2=0.7, generator=gen(seed))
    x, _ = lg.sample(5, generator=gen(seed + 1))
    mean, cov = conditional_posterior(lg, x)
    post = lg.posterior(x)
    torch.testing.assert_close(post.mean, mean, rtol=0, atol=1e-10)
    torch.testing.assert_close(
        post.covariance_matrix, cov.expand(5, 3, 3), rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_log_evidence_by_bayes_rule(seed):
    """log p(x) = log p(x | z) + log p(z) - log p(z | x) holds at any z; the posterior
    here comes from the joint's conditioning formula, not from the module."""
    lg = LinearGaussian.random(4, 2, generator=gen(seed))
    x, _ = lg.sample(3, generator=gen(seed + 1))
    mean, cov = conditional_posterior(lg, x)
    z = 2 * torch.randn(7, 3, 2, generator=gen(seed + 2), dtype=torch.float64)
    log_post = MultivariateNormal(mean, covariance_matrix=cov).log_prob(z)  # (7, 3)
    bayes = lg.log_likelihood(x, z) + lg.log_prior(z) - log_post
    log_px = lg.log_evidence(x)
    torch.testing.assert_close(bayes, log_px.expand(7, 3), rtol=0, atol=1e-10)
    torch.testing.assert_close(lg.log_joint(x, z) - log_px, lg.log_posterior(z, x))


def test_log_evidence_by_quadrature():
    """k = 1: integrate p(x | z) p(z) over a dense grid of z."""
    lg = LinearGaussian.random(4, 1, generator=gen(7))
    x, _ = lg.sample(3, generator=gen(8))
    grid = torch.linspace(-10, 10, 20_001, dtype=torch.float64)
    log_joint = lg.log_joint(x, grid[:, None, None])  # (G, 3)
    quadrature = torch.logsumexp(log_joint, 0) + math.log(float(grid[1] - grid[0]))
    torch.testing.assert_close(lg.log_evidence(x), quadrature, rtol=0, atol=1e-8)


def test_linear_gaussian_samples_the_joint():
    lg = LinearGaussian.random(3, 2, generator=gen(9))
    n = 100_000
    x, z = lg.sample(n, generator=gen(10))
    assert x.shape == (n, 3) and z.shape == (n, 2)
    marginal = lg.marginal()
    # the sample mean's standard error is sqrt(diag cov / n)
    stderr = torch.sqrt(torch.diagonal(marginal.covariance_matrix) / n)
    assert bool(((x.mean(0) - marginal.mean).abs() < Z * stderr).all())
    torch.testing.assert_close(
        torch.cov(x.T), marginal.covariance_matrix, rtol=0, atol=0.05
    )
    # x - W z - b is the noise, N(0, sigma^2 I)
    noise = x - z @ lg.W.T - lg.b
    assert abs(float(noise.var()) - lg.sigma2) < 0.02


# --- reparameterization ---------------------------------------------------------------


def test_reparameterize_shapes_and_moments():
    mu, logvar = random_gaussian((2, 3), seed=11)
    assert vae.reparameterize(mu, logvar).shape == (2, 3)
    S = 200_000
    z = vae.reparameterize(mu, logvar, num_samples=S, generator=gen(12))
    assert z.shape == (S, 2, 3) and z.dtype == torch.float64
    var = logvar.exp()
    # standard errors: of the mean sqrt(var / S), of the variance var sqrt(2 / S)
    assert bool(((z.mean(0) - mu).abs() < Z * torch.sqrt(var / S)).all()), (
        f"sample mean {z.mean(0)} vs mu {mu}"
    )
    assert bool(((z.var(0) - var).abs() < Z * var * math.sqrt(2 / S)).all()), (
        f"sample variance {z.var(0)} vs exp(logvar) {var}"
    )
    again = vae.reparameterize(mu, logvar, num_samples=S, generator=gen(12))
    assert torch.equal(z, again), "the same generator seed must give the same draw"


def test_reparameterized_gradient_is_unbiased():
    """Monte Carlo ELBO E_q[log p(x, z) - log q(z)] with z = mu + sigma * eps: its
    gradient w.r.t. (mu, logvar) averages to the gradient of the closed-form ELBO."""
    lg = LinearGaussian.random(5, 3, generator=gen(13))
    x, _ = lg.sample(2, generator=gen(14))
    mu0, logvar0 = random_gaussian((2, 3), seed=15)
    mu, logvar = mu0.clone().requires_grad_(), logvar0.clone().requires_grad_()
    exact = torch.autograd.grad(lg.elbo(x, mu, logvar).sum(), (mu, logvar))
    exact = torch.cat([g.flatten() for g in exact])

    def estimated(batch, seed, *, detach=False):
        z = vae.reparameterize(mu, logvar, num_samples=batch, generator=gen(seed))
        if detach:  # no path from z to (mu, logvar): only the score term is left
            z = z.detach()
        est = (lg.log_joint(x, z) - vae.log_normal(z, mu, logvar)).mean(0).sum()
        return torch.cat([g.flatten() for g in torch.autograd.grad(est, (mu, logvar))])

    M, S = 20, 4000  # M independent batches of S samples
    grads = torch.stack([estimated(S, 100 + i) for i in range(M)])
    mean, stderr = grads.mean(0), grads.std(0) / math.sqrt(M)
    assert bool(((mean - exact).abs() < Z * stderr + 1e-9).all()), (
        f"reparameterized gradient {mean} vs exact {exact} (standard error {stderr})"
    )
    # the check has power: the noise is small next to the gradient ...
    assert float((Z * stderr).max()) < 0.1 * float(exact.abs().max())
    # ... and a wrong estimator (no pathwise term) fails it
    wrong = torch.stack([estimated(S, 100 + i, detach=True) for i in range(M)]).mean(0)
    assert float(((wrong - exact).abs() / stderr).max()) > 10 * Z


# --- importance-weighted bounds -------------------------------------------------------


def test_iwae_bound_rises_with_k_from_the_elbo():
    shape, B, R = (1, 28, 28), 16, 30
    model = mlp_vae(shape)
    x = binary_images(B, shape, seed=1)
    with torch.no_grad():
        elbo = torch.stack(
            [vae.elbo(model, x, generator=gen(1000 + r))["elbo"] for r in range(R)]
        )
    bounds = {
        k: torch.stack(
            [
                vae.iwae_bound(model, x, k=k, generator=gen(2000 * k + r))
                for r in range(R)
            ]
        )
        for k in (1, 5, 50)
    }

    def mean_and_stderr(values):  # (R, B): mean over all, error of the mean
        return float(values.mean()), float(values.var(0).sum().sqrt()) / (B * R**0.5)

    m_elbo, se_elbo = mean_and_stderr(elbo)
    stats = {k: mean_and_stderr(v) for k, v in bounds.items()}
    m1, se1 = stats[1]
    # k = 1 is the ELBO (one sample of log p(x, z) / q(z) instead of the closed-form KL)
    assert abs(m1 - m_elbo) < Z * math.hypot(se1, se_elbo), (
        f"iwae(k=1) {m1:.3f} +- {se1:.3f} vs ELBO {m_elbo:.3f} +- {se_elbo:.3f}"
    )
    for a, b in [(1, 5), (5, 50)]:
        (ma, sa), (mb, sb) = stats[a], stats[b]
        assert mb > ma - Z * math.hypot(sa, sb), (
            f"iwae(k={b}) {mb:.3f} should not fall below iwae(k={a}) {ma:.3f}"
        )
    m50, se50 = stats[50]
    assert m50 > m_elbo + Z * math.hypot(se50, se_elbo), (
        f"iwae(k=50) {m50:.3f} should be above the ELBO {m_elbo:.3f}"
    )


@pytest.mark.parametrize("latent_dim", [1, 2])
def test_iwae_bounds_approach_log_evidence(latent_dim):
    """With a 1- or 2-d latent, log p(x) = log int p(x | z) p(z) dz by quadrature on a
    grid; sampling the prior (many samples) and the encoder (fewer) both approach it."""
    shape, B = (1, 8, 8), 8
    model = mlp_vae(shape, latent_dim=latent_dim)
    x = binary_images(B, shape, seed=2)
    n = 4001 if latent_dim == 1 else 241
    axis = torch.linspace(-8, 8, n, dtype=torch.float64)
    grid = axis[:, None] if latent_dim == 1 else torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        logits = model.decode_logits(grid.float())  # (G, 1, 8, 8)
    log_lik = Bernoulli(logits=logits[:, None]).log_prob(x).sum((2, 3, 4))  # (G, B)
    log_joint = log_lik.double() + Normal(0.0, 1.0).log_prob(grid).sum(-1)[:, None]
    log_px = torch.logsumexp(log_joint, 0) + latent_dim * math.log(axis[1] - axis[0])

    prior = vae.iwae_bound(
        model, x, k=20_000, proposal="prior", chunk=5000, generator=gen(3)
    )
    encoder = vae.iwae_bound(model, x, k=2000, chunk=1000, generator=gen(4))
    elbo = torch.stack(
        [vae.iwae_bound(model, x, k=1, generator=gen(s)) for s in range(50)]
    )
    tol = 0.1  # nats
    assert float((prior.double() - log_px).abs().max()) < tol, (prior, log_px)
    assert float((encoder.double() - log_px).abs().max()) < tol, (encoder, log_px)
    assert float((prior - encoder).abs().max()) < tol
    # the check has power: the ELBO's gap to log p(x) is wider than the tolerance
    assert float((log_px - elbo.mean(0).double()).mean()) > 2 * tol


# --- the loss and training ------------------------------------------------------------


def test_loss_terms_and_gradients():
    model = mlp_vae((1, 8, 8))
    x = binary_images(6, (1, 8, 8), seed=3)
    torch.manual_seed(7)
    out = vae.loss(model, x, beta=0.5)
    assert set(out) == {"loss", "reconstruction", "kl"}
    assert all(v.ndim == 0 for v in out.values()), "every term is a batch mean"
    torch.testing.assert_close(out["loss"], out["reconstruction"] + 0.5 * out["kl"])

    # the same draw, computed independently: z = mu + sigma * eps from the global RNG
    torch.manual_seed(7)
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    reconstruction = (
        -Bernoulli(logits=model.decode_logits(z)).log_prob(x).sum((1, 2, 3))
    )
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(out["reconstruction"], reconstruction.mean())
    torch.testing.assert_close(out["kl"], kl.mean())
    # beta = 0 under the same seed: the reconstruction alone
    torch.manual_seed(7)
    plain = vae.loss(model, x, beta=0.0)
    torch.testing.assert_close(plain["loss"], out["reconstruction"])

    model.zero_grad()
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), (
            f"no gradient reaches {name}"
        )
        assert bool(torch.isfinite(p.grad).all()), f"non-finite gradient in {name}"


def test_fit_lowers_the_vae_loss_on_digits():
    images = gm.load("digits", split="train", limit=320).images  # (N, 1, 8, 8) uint8
    assert images.shape == (320, 1, 8, 8)
    gm.seed_everything(0)
    model = vae.MLPVAE(image_shape=(1, 8, 8), hidden_dims=(64,), latent_dim=4)
    history = gm.fit(
        model,
        images,
        loss_fn=lambda m, x: vae.loss(m, vae.binarize(x)),
        num_epochs=6,
        batch_size=32,
        lr=3e-3,
        seed=0,
    )
    for key in ("loss", "reconstruction", "kl"):
        assert len(history.epochs.get(key, [])) == 6, f"history lacks {key!r}"
    for loss, rec, kl in zip(
        *(history.epochs[k] for k in ("loss", "reconstruction", "kl"))
    ):
        assert loss == pytest.approx(rec + kl, rel=1e-5), "beta = 1: loss = rec + KL"
    assert history.loss[-1] < 0.8 * history.loss[0], history.loss


# --- the models -----------------------------------------------------------------------

MODELS = [  # (class, image shape, extra arguments)
    (vae.MLPVAE, (1, 28, 28), {"hidden_dims": (32,)}),
    (vae.MLPVAE, (1, 8, 8), {"hidden_dims": (32, 16)}),
    (vae.ConvVAE, (1, 28, 28), {"channels": (8, 16)}),
    (vae.ConvVAE, (1, 8, 8), {"channels": (8,)}),
    (vae.ConvVAE, (1, 8, 8), {"channels": (4, 8)}),
]
MODEL_IDS = [
    f"{c.__name__}-{s[1]}px-{'-'.join(map(str, *a.values()))}" for c, s, a in MODELS
]


@pytest.mark.parametrize(("cls", "shape", "kwargs"), MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_model_shapes_and_samples(cls, shape, kwargs, likelihood):
    torch.manual_seed(0)
    model = cls(image_shape=shape, latent_dim=3, likelihood=likelihood, **kwargs)
    x = binary_images(5, shape, seed=4)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 3)
    with torch.no_grad():
        x_hat = model(x)
        decoded = model.decode(mu)
    assert x_hat.shape == decoded.shape == (5, *shape)
    torch.testing.assert_close(x_hat, decoded, msg="forward decodes the encoder's mean")
    assert float(x_hat.min()) >= 0 and float(x_hat.max()) <= 1
    means = model.sample(4, generator=gen(1))
    assert means.shape == (4, *shape)
    assert float(means.min()) >= 0 and float(means.max()) <= 1
    torch.testing.assert_close(means, model.sample(4, generator=gen(1)))
    draws = model.sample(4, generator=gen(1), mean=False)
    assert draws.shape == (4, *shape)
    binary = bool(((draws == 0) | (draws == 1)).all())
    if likelihood == "bernoulli":
        assert binary, "a Bernoulli draw must be binary"
    else:  # the same z (same seed), plus N(0, sigma_x^2) noise per pixel
        assert not binary, "a Gaussian draw must not be binary"
        sigma_x = math.exp(0.5 * model.log_sigma2_x.item())
        spread = float((draws - means).std())
        assert spread == pytest.approx(sigma_x, rel=0.1), (spread, sigma_x)
    has_sigma = "log_sigma2_x" in dict(model.named_parameters())
    assert has_sigma == (likelihood == "gaussian")


@pytest.mark.parametrize("cls", [vae.MLPVAE, vae.ConvVAE])
def test_bernoulli_decoder_log_prob(cls):
    torch.manual_seed(0)
    model = cls(
        image_shape=(1, 8, 8),
        latent_dim=2,
        **({"channels": (4,)} if cls is vae.ConvVAE else {"hidden_dims": (16,)}),
    )
    x = binary_images(3, (1, 8, 8), seed=5)
    z = torch.randn(4, 3, 2, generator=gen(6))  # (S, B, k)
    with torch.no_grad():
        got = vae.decoder_log_prob(model, x, z)
        logits = model.decode_logits(z.flatten(0, 1)).unflatten(0, (4, 3))
    expected = Bernoulli(logits=logits).log_prob(x).sum((2, 3, 4))
    assert got.shape == (4, 3)
    torch.testing.assert_close(got, expected)
    with torch.no_grad():  # (B, k) codes give (B,)
        torch.testing.assert_close(vae.decoder_log_prob(model, x, z[0]), expected[0])


def test_gaussian_decoder_log_prob_and_learned_variance():
    torch.manual_seed(0)
    model = vae.MLPVAE(
        image_shape=(1, 8, 8), hidden_dims=(16,), latent_dim=2, likelihood="gaussian"
    )
    assert isinstance(model.log_sigma2_x, torch.nn.Parameter)
    with torch.no_grad():
        model.log_sigma2_x.fill_(-1.3)
    x = torch.rand(3, 1, 8, 8, generator=gen(7))  # gray values are fine here
    z = torch.randn(4, 3, 2, generator=gen(8))
    with torch.no_grad():
        got = vae.decoder_log_prob(model, x, z)
        mean = model.decode(z.flatten(0, 1)).unflatten(0, (4, 3))
    expected = Normal(mean, math.exp(0.5 * -1.3)).log_prob(x).sum((2, 3, 4))
    torch.testing.assert_close(got, expected)
    # the loss trains the variance too
    out = vae.loss(model, x)
    out["loss"].backward()
    assert model.log_sigma2_x.grad is not None and float(model.log_sigma2_x.grad) != 0
    bound = vae.iwae_bound(model, x, k=3, generator=gen(9))
    assert bound.shape == (3,) and bool(torch.isfinite(bound).all())


# --- bad input ------------------------------------------------------------------------


def _model():
    return mlp_vae((1, 8, 8))


GRAY = torch.full((2, 1, 8, 8), 0.5)
BINARY = torch.ones(2, 1, 8, 8)
MU = torch.zeros(2, 3)

BAD_INPUT = {  # id: (call, exception, message pattern)
    "gray-loss": (lambda: vae.loss(_model(), GRAY), ValueError, "binary images"),
    "gray-elbo": (lambda: vae.elbo(_model(), GRAY), ValueError, "binarize"),
    "gray-iwae": (
        lambda: vae.iwae_bound(_model(), GRAY, k=2),
        ValueError,
        r"binary images \(every pixel 0 or 1\)",
    ),
    "k=0": (
        lambda: vae.iwae_bound(_model(), BINARY, k=0),
        ValueError,
        "k must be an int >= 1, got 0",
    ),
    "k=-1": (
        lambda: vae.iwae_bound(_model(), BINARY, k=-1),
        ValueError,
        "k must be an int >= 1, got -1",
    ),
    "k=2.5": (
        lambda: vae.iwae_bound(_model(), BINARY, k=2.5),
        ValueError,
        "k must be an int >= 1, got 2.5",
    ),
    "chunk=0": (
        lambda: vae.iwae_bound(_model(), BINARY, k=2, chunk=0),
        ValueError,
        "chunk must be an int >= 1",
    ),
    "proposal": (
        lambda: vae.iwae_bound(_model(), BINARY, k=2, proposal="bogus"),
        ValueError,
        "proposal must be 'encoder' or 'prior', got 'bogus'",
    ),
    "num_samples=0": (
        lambda: vae.reparameterize(MU, MU, num_samples=0),
        ValueError,
        "num_samples must be an int >= 1, got 0",
    ),
    "shape-mismatch": (
        lambda: vae.reparameterize(MU, torch.zeros(2, 4)),
        ValueError,
        r"same shape \(\.\.\., k\), got \(2, 3\) and \(2, 4\)",
    ),
    "kl-shape-mismatch": (
        lambda: vae.kl_normal(MU, torch.zeros(3)),
        ValueError,
        r"mu and logvar must have the same shape",
    ),
    "int-mu": (
        lambda: vae.kl_normal(torch.zeros(2, 3, dtype=torch.long), MU),
        TypeError,
        "mu must be a float tensor, got dtype torch.int64",
    ),
    "int-logvar": (
        lambda: vae.reparameterize(MU, torch.zeros(2, 3, dtype=torch.int32)),
        TypeError,
        "logvar must be a float tensor, got dtype torch.int32",
    ),
    "uint8-encode": (
        lambda: _model().encode(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)),
        TypeError,
        "float images.*to_float",
    ),
    "uint8-loss": (
        lambda: vae.loss(_model(), torch.zeros(2, 1, 8, 8, dtype=torch.uint8)),
        TypeError,
        "to_float",
    ),
    "image-shape": (
        lambda: vae.elbo(_model(), torch.zeros(2, 1, 28, 28)),
        ValueError,
        r"\(B, 1, 8, 8\), got \(2, 1, 28, 28\)",
    ),
    "image-ndim": (
        lambda: _model().encode(torch.zeros(1, 8, 8)),
        ValueError,
        r"\(B, 1, 8, 8\), got \(1, 8, 8\)",
    ),
    "likelihood": (
        lambda: vae.MLPVAE(image_shape=(1, 8, 8), likelihood="poisson"),
        ValueError,
        "unknown likelihood 'poisson'; expected one of 'bernoulli', 'gaussian'",
    ),
    "latent_dim=0": (
        lambda: vae.MLPVAE(image_shape=(1, 8, 8), latent_dim=0),
        ValueError,
        "latent_dim must be an int >= 1, got 0",
    ),
    "conv-latent_dim=0": (
        lambda: vae.ConvVAE(image_shape=(1, 8, 8), channels=(4,), latent_dim=0),
        ValueError,
        "latent_dim must be an int >= 1",
    ),
    "hidden_dims-0": (
        lambda: vae.MLPVAE(image_shape=(1, 8, 8), hidden_dims=(32, 0)),
        ValueError,
        r"hidden_dims must be positive ints, got \(32, 0\)",
    ),
    "channels-empty": (
        lambda: vae.ConvVAE(image_shape=(1, 8, 8), channels=()),
        ValueError,
        r"channels must name at least one stage",
    ),
    "channels-indivisible": (
        lambda: vae.ConvVAE(image_shape=(1, 8, 8), channels=(4, 8, 16, 32)),
        ValueError,
        r"divisible by 2\*\*len\(channels\) = 16",
    ),
    "sample-n=0": (lambda: _model().sample(0), ValueError, "n must be an int >= 1"),
    "binarize-range": (
        lambda: vae.binarize(torch.tensor([-0.5, 0.2, 1.0])),
        ValueError,
        r"expected values in \[0, 1\], got \[-0.5, 1\]",
    ),
    "binarize-above": (
        lambda: vae.binarize(torch.tensor([0.0, 255.0])),
        ValueError,
        r"values in \[0, 1\], got \[0, 255\]",
    ),
    "binarize-int": (
        lambda: vae.binarize(torch.tensor([0, 1])),
        TypeError,
        r"expected float images in \[0, 1\], got dtype torch.int64",
    ),
    "beta-negative": (
        lambda: vae.loss(_model(), BINARY, beta=-1.0),
        ValueError,
        "beta must be a finite number >= 0, got -1.0",
    ),
    "beta-nan": (
        lambda: vae.loss(_model(), BINARY, beta=float("nan")),
        ValueError,
        "beta must be a finite number >= 0, got nan",
    ),
    "beta-bool": (
        lambda: vae.loss(_model(), BINARY, beta=True),
        ValueError,
        "beta must be a finite number >= 0, got True",
    ),
    "binarize-nan": (
        lambda: vae.binarize(torch.tensor([0.5, float("nan")])),
        ValueError,
        r"expected values in \[0, 1\]",
    ),
    "sigma2=0": (
        lambda: LinearGaussian(torch.zeros(4, 2), torch.zeros(4), 0.0),
        ValueError,
        "sigma2 must be > 0, got 0.0",
    ),
    "sigma2<0": (
        lambda: LinearGaussian(torch.zeros(4, 2), torch.zeros(4), -1.0),
        ValueError,
        "sigma2 must be > 0, got -1.0",
    ),
    "W-b-mismatch": (
        lambda: LinearGaussian(torch.zeros(5, 3), torch.zeros(4), 1.0),
        ValueError,
        r"expected W \(D, k\) and b \(D,\), got \(5, 3\) and \(4,\)",
    ),
    "W-1d": (
        lambda: LinearGaussian(torch.zeros(4), torch.zeros(4), 1.0),
        ValueError,
        r"expected W \(D, k\)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
def test_bad_input_is_explained(case):
    call, exception, pattern = BAD_INPUT[case]
    with pytest.raises(exception, match=pattern):
        call()


def test_good_input_passes_the_same_checks():
    """The counterpart of the bad cases: binary images, k = 1, beta = 0 are all fine."""
    model = _model()
    assert vae.loss(model, BINARY, beta=0)["loss"].shape == ()
    assert vae.iwae_bound(model, BINARY, k=1).shape == (2,)
    assert vae.binarize(torch.tensor([0.0, 1.0])).tolist() == [0.0, 1.0]


def test_a_double_precision_model_keeps_its_precision():
    model = vae.MLPVAE(hidden_dims=(16,), latent_dim=2).double()
    x = vae.binarize(torch.rand(3, 1, 28, 28, dtype=torch.float64))
    assert vae.elbo(model, x)["elbo"].dtype == torch.float64
    assert vae.iwae_bound(model, x, k=4).dtype == torch.float64
    assert model.sample(2).dtype == torch.float64
