"""gmlib.diffusion_elbo: the discretized decoder against the normal CDF, the bound's
terms against closed forms for a perfect noise predictor, and the Monte Carlo estimate
over steps against the full sum."""

from __future__ import annotations

import math

import pytest
import torch

from gmlib.diffusion import Schedule
from gmlib.diffusion_elbo import discretized_gaussian_log_prob, nll_bound
from gmlib.unet import UNet

F64 = torch.float64
LEVELS = torch.arange(256, dtype=F64) * 2 / 255 - 1  # the 256 values on [-1, 1]

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


@pytest.mark.parametrize(
    "mean, std", [(0.0, 0.1), (0.97, 0.02), (-1.3, 0.5), (0.2, 3.0)]
)
def test_discretized_gaussian_is_a_distribution_over_the_256_levels(mean, std):
    logp = discretized_gaussian_log_prob(LEVELS, torch.full_like(LEVELS, mean), std)
    assert abs(float(logp.exp().sum()) - 1) < 1e-9
    for k in (0, 1, 128, 254, 255):  # interior bins and the two open end bins
        hi = math.inf if k == 255 else (float(LEVELS[k]) + 1 / 255 - mean) / std
        lo = -math.inf if k == 0 else (float(LEVELS[k]) - 1 / 255 - mean) / std
        expected = (1.0 if hi == math.inf else phi(hi)) - (
            0.0 if lo == -math.inf else phi(lo)
        )
        if expected > 1e-10:
            assert abs(float(logp[k]) - math.log(expected)) < 1e-7, k


def test_far_tail_falls_back_on_the_density_without_minus_infinity():
    x = torch.tensor([0.0], dtype=F64)
    logp = discretized_gaussian_log_prob(x, torch.tensor([0.9], dtype=F64), 0.01)
    expected = torch.distributions.Normal(0.9, 0.01).log_prob(x) + math.log(2 / 255)
    assert bool(torch.isfinite(logp).all())
    torch.testing.assert_close(logp, expected.double(), rtol=1e-6, atol=0)


def perfect_eps(schedule, x_star):
    def eps(x, t, y=None):
        a = schedule.alpha_bars[t].to(x.dtype).view(-1, *[1] * (x.ndim - 1))
        return (x - a.sqrt() * x_star) / (1 - a).sqrt()

    return eps


@pytest.mark.parametrize("T", [10, 100])
def test_perfect_predictor_bound_is_prior_plus_decoder_in_closed_form(T):
    s = Schedule.cosine(T)
    images = torch.randint(0, 256, (1, 1, 4, 4), generator=gen(1), dtype=torch.uint8)
    x_star = images.double() / 255 * 2 - 1
    out = nll_bound(
        perfect_eps(s, x_star),
        s,
        images.expand(3, -1, -1, -1).clone(),
        generator=gen(2),
    )
    # no KL between the posterior and a model that knows x0
    torch.testing.assert_close(
        out["diffusion"], torch.zeros(3, dtype=F64), rtol=0, atol=1e-8
    )
    a_T = s.alpha_bars[-1]
    prior = torch.distributions.kl_divergence(
        torch.distributions.Normal(a_T.sqrt() * x_star, (1 - a_T).sqrt()),
        torch.distributions.Normal(0.0, 1.0),
    ).sum()
    sigma = math.sqrt(float(s.betas[0]))
    decoder = 0.0
    for v in x_star.flatten().tolist():  # the decoder's mean is x* itself
        hi = 1.0 if v > 1 - 1 / 255 else phi((1 / 255) / sigma)
        lo = 0.0 if v < -1 + 1 / 255 else phi((-1 / 255) / sigma)
        decoder -= math.log(hi - lo)
    torch.testing.assert_close(out["prior"], prior.expand(3), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(
        out["decoder"], torch.full((3,), decoder, dtype=F64), rtol=1e-9, atol=0
    )
    total = float(prior) + decoder
    torch.testing.assert_close(
        out["total"], torch.full((3,), total, dtype=F64), rtol=1e-9, atol=0
    )
    torch.testing.assert_close(
        out["bits_per_dim"], out["total"] / (16 * math.log(2)), rtol=1e-12, atol=0
    )


def test_monte_carlo_over_steps_estimates_the_full_sum():
    """The same imperfect predictor: k random steps per image, scaled by T - 1, average
    to the full sum over steps (both random in x_t), within 5 standard errors."""
    s = Schedule.cosine(20)
    images = torch.randint(0, 256, (1, 1, 3, 3), generator=gen(3), dtype=torch.uint8)
    x_star = images.double() / 255 * 2 - 1
    exact_eps = perfect_eps(s, x_star)

    def eps(x, t, y=None):  # wrong by an amount that depends on x and t
        return exact_eps(x, t) + 0.3 * torch.sin(3 * x) * (1 + t.view(-1, 1, 1, 1) % 3)

    batch = images.expand(4000, -1, -1, -1).clone()
    full = nll_bound(eps, s, batch, generator=gen(4))["diffusion"]
    sampled = nll_bound(eps, s, batch, timesteps=2, generator=gen(5))["diffusion"]
    diff = float(full.mean() - sampled.mean())
    se = math.sqrt(float(full.var()) / len(full) + float(sampled.var()) / len(sampled))
    assert float(full.mean()) > 1.0, "the predictor must be wrong enough to matter"
    assert abs(diff) < 5 * se, (diff, se)
    assert float(sampled.var()) > float(full.var()), "sampling steps adds variance"


def test_a_perfect_predictor_scores_better_than_predicting_zero_noise():
    s = Schedule.cosine(20)
    images = torch.randint(0, 256, (2, 1, 4, 4), generator=gen(6), dtype=torch.uint8)
    x_star = images[:1].double() / 255 * 2 - 1
    one = images[:1].expand(2, -1, -1, -1).clone()
    good = nll_bound(perfect_eps(s, x_star), s, one, generator=gen(7))["total"]
    zero = nll_bound(lambda x, t: torch.zeros_like(x), s, one, generator=gen(7))[
        "total"
    ]
    assert bool((good < zero).all()), (good, zero)


def test_a_class_conditional_unet_gives_finite_bounds_with_and_without_labels():
    torch.manual_seed(0)
    net = UNet(channels=8, num_classes=3).eval()
    s = Schedule.cosine(10)
    images = torch.randint(0, 256, (2, 1, 8, 8), generator=gen(8), dtype=torch.uint8)
    free = nll_bound(net, s, images, generator=gen(9))
    labelled = nll_bound(net, s, images, torch.tensor([0, 2]), generator=gen(9))
    for out in (free, labelled):
        assert out["total"].shape == (2,) and bool(torch.isfinite(out["total"]).all())
        assert bool((out["bits_per_dim"] > 0).all())
    assert float((free["total"] - labelled["total"]).abs().max()) > 1e-6


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(images=torch.rand(2, 1, 4, 4)), TypeError, "must be uint8"),
        (
            dict(images=torch.zeros(2, 4, 4, dtype=torch.uint8)),
            ValueError,
            "B, C, H, W",
        ),
        (dict(images=torch.zeros(0, 1, 4, 4, dtype=torch.uint8)), ValueError, "B >= 1"),
        (dict(y=torch.zeros(3, dtype=torch.long)), ValueError, r"y must be a \(2,\)"),
        (dict(timesteps=0), ValueError, "timesteps"),
    ],
)
def test_bad_input_is_explained(kwargs, error, pattern):
    args = dict(images=torch.zeros(2, 1, 4, 4, dtype=torch.uint8))
    args.update(kwargs)
    images = args.pop("images")
    with pytest.raises(error, match=pattern):
        nll_bound(
            lambda x, t, y=None: torch.zeros_like(x),
            Schedule.cosine(10),
            images,
            **args,
        )


def test_every_kl_term_and_the_decoder_match_torch_distributions():
    """Replay the bound's random stream (one x_t per step 1 .. T-1, then x_1 for the
    decoder) and recompute each term independently."""
    s = Schedule.cosine(5)
    images = torch.randint(0, 256, (3, 1, 2, 2), generator=gen(10), dtype=torch.uint8)
    x0 = images.double() / 255 * 2 - 1

    def eps(x, t, y=None):
        return 0.5 * torch.tanh(x) + 0.1 * t.view(-1, 1, 1, 1)

    out = nll_bound(eps, s, images, generator=gen(11))
    g = gen(11)
    expected_kl = torch.zeros(3, dtype=F64)
    for step in range(1, s.T):
        t = torch.full((3,), step)
        x_t = s.q_sample(x0, t, torch.randn(x0.shape, generator=g, dtype=F64))
        x0_hat = (x_t - (1 - s.alpha_bars[step]).sqrt() * eps(x_t, t)) / s.alpha_bars[
            step
        ].sqrt()
        a_prev, beta = s.alpha_bars[step - 1], s.betas[step]
        coef0 = a_prev.sqrt() * beta / (1 - s.alpha_bars[step])
        coeft = s.alphas[step].sqrt() * (1 - a_prev) / (1 - s.alpha_bars[step])
        var = (1 - a_prev) / (1 - s.alpha_bars[step]) * beta
        q = torch.distributions.Normal(coef0 * x0 + coeft * x_t, var.sqrt())
        p = torch.distributions.Normal(coef0 * x0_hat + coeft * x_t, var.sqrt())
        expected_kl += torch.distributions.kl_divergence(q, p).sum((1, 2, 3))
    torch.testing.assert_close(out["diffusion"], expected_kl, rtol=1e-9, atol=1e-12)
    t0 = torch.zeros(3, dtype=torch.long)
    x_1 = s.q_sample(x0, t0, torch.randn(x0.shape, generator=g, dtype=F64))
    mean = (x_1 - (1 - s.alpha_bars[0]).sqrt() * eps(x_1, t0)) / s.alpha_bars[0].sqrt()
    sigma = math.sqrt(float(s.betas[0]))
    decoder = torch.zeros(3, dtype=F64)
    for i in range(3):
        for v, m in zip(x0[i].flatten().tolist(), mean[i].flatten().tolist()):
            hi = 1.0 if v > 1 - 1 / 255 else phi((v + 1 / 255 - m) / sigma)
            lo = 0.0 if v < -1 + 1 / 255 else phi((v - 1 / 255 - m) / sigma)
            decoder[i] -= math.log(max(hi - lo, 1e-300))
    torch.testing.assert_close(out["decoder"], decoder, rtol=1e-7, atol=1e-9)
