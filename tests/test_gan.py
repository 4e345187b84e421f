"""gmlib.gan and gmlib.gan_toy: the losses against their formulas, the DCGAN guidelines
read off the modules, the training loop, the toy problem, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import gmlib as gm
from gmlib import gan, gan_toy


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


REAL = [0.0, 2.0, -0.5]
FAKE = [-1.0, 1.0, -3.0]


def test_discriminator_loss_is_the_negative_value_of_the_game():
    by_hand = (
        -sum(math.log(sigmoid(v)) for v in REAL) / 3
        - sum(math.log(1 - sigmoid(v)) for v in FAKE) / 3
    )
    got = gan.discriminator_loss(torch.tensor(REAL), torch.tensor(FAKE))
    assert got.item() == pytest.approx(by_hand, rel=1e-6)


def test_least_squares_discriminator_loss():
    by_hand = (
        sum(0.5 * (v - 1) ** 2 for v in REAL) / 3 + sum(0.5 * v**2 for v in FAKE) / 3
    )
    got = gan.discriminator_loss(
        torch.tensor(REAL), torch.tensor(FAKE), kind="least-squares"
    )
    assert got.item() == pytest.approx(by_hand, rel=1e-6)


@pytest.mark.parametrize(
    "kind, formula",
    [
        ("saturating", lambda v: math.log(1 - sigmoid(v))),
        ("non-saturating", lambda v: -math.log(sigmoid(v))),
        ("least-squares", lambda v: 0.5 * (v - 1) ** 2),
    ],
)
def test_generator_losses_match_their_formulas(kind, formula):
    by_hand = sum(formula(v) for v in FAKE) / 3
    got = gan.generator_loss(torch.tensor(FAKE), kind=kind)
    assert got.item() == pytest.approx(by_hand, rel=1e-6)


def test_losses_stay_finite_for_confident_logits():
    logits = torch.tensor([-60.0, 60.0])
    for kind in ("saturating", "non-saturating"):
        assert torch.isfinite(gan.generator_loss(logits, kind=kind))
    assert torch.isfinite(gan.discriminator_loss(logits, logits))


def test_the_saturating_gradient_vanishes_where_samples_are_bad():
    logits = torch.tensor([-6.0], requires_grad=True)  # D(G(z)) = 0.0025
    (g_sat,) = torch.autograd.grad(
        gan.generator_loss(logits, kind="saturating"), logits
    )
    (g_ns,) = torch.autograd.grad(
        gan.generator_loss(logits, kind="non-saturating"), logits
    )
    d = sigmoid(-6.0)
    assert g_sat.item() == pytest.approx(-d, rel=1e-5)
    assert g_ns.item() == pytest.approx(-(1 - d), rel=1e-5)
    assert abs(g_ns.item()) > 100 * abs(g_sat.item())


def test_dcgan_follows_the_five_guidelines():
    g_net, d_net = (
        gan.Generator(latent_dim=16, channels=8),
        gan.Discriminator(channels=8),
    )
    mods_g, mods_d = list(g_net.modules()), list(d_net.modules())
    pooling = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    assert not any(isinstance(m, pooling) for m in mods_g + mods_d)
    assert [m.stride for m in mods_d if isinstance(m, nn.Conv2d)][:2] == [(2, 2)] * 2
    assert [m.stride for m in mods_g if isinstance(m, nn.ConvTranspose2d)][1:] == [
        (2, 2)
    ] * 2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in mods_g) == 2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in mods_d) == 1
    assert not isinstance(d_net.net[1], nn.BatchNorm2d)  # not on the input layer
    assert not any(isinstance(m, nn.Linear) for m in mods_g + mods_d)
    assert isinstance(mods_g[-1], nn.Tanh)
    assert all(not isinstance(m, nn.LeakyReLU) for m in mods_g)
    assert all(not isinstance(m, nn.ReLU) for m in mods_d)
    z = torch.randn(3, 16)
    x = g_net(z)
    assert x.shape == (3, 1, 28, 28) and x.abs().max() <= 1
    assert d_net(x).shape == (3,)
    sample = g_net.sample(5)
    assert sample.shape == (5, 1, 28, 28) and 0 <= sample.min() and sample.max() <= 1


def test_init_weights_follows_dcgan():
    g_net = gan.Generator(latent_dim=8, channels=64).apply(gan.init_weights)
    conv = g_net.net[0].weight
    assert abs(conv.std().item() - 0.02) < 0.002
    bn = g_net.net[1].weight
    assert abs(bn.mean().item() - 1) < 0.01


@pytest.fixture(scope="module")
def images():
    return gm.data.load("fashion-mnist", split="train", limit=512).images


def test_fit_gan_records_the_game_and_calls_back(images):
    torch.manual_seed(0)
    g_net, d_net = (
        gan.Generator(latent_dim=8, channels=4),
        gan.Discriminator(channels=4),
    )
    seen = []

    def keep(step, generator):
        seen.append((step, generator.training))

    history = gan.fit_gan(
        g_net,
        d_net,
        images,
        num_epochs=2,
        k=2,
        batch_size=32,
        progress=False,
        seed=0,
        step_callback=keep,
    )
    rounds = 512 // (2 * 32)
    assert [s for s, _ in seen] == list(range(1, 2 * rounds + 1))
    assert not any(training for _, training in seen)  # sampled in eval mode
    assert set(history.steps) == {"loss_d", "loss_g", "d_real", "d_fake"}
    assert all(len(v) == 2 * rounds for v in history.steps.values())
    assert all(len(v) == 2 for v in history.epochs.values())
    assert all(0 <= p <= 1 for p in history.steps["d_real"] + history.steps["d_fake"])
    assert history.num_images == 2 * rounds * 64
    assert not g_net.training and not d_net.training
    again = gm.History.from_dict(history.to_dict())
    assert again.steps == history.steps


def test_fit_gan_is_repeatable(images):
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        g_net = gan.Generator(latent_dim=8, channels=4)
        d_net = gan.Discriminator(channels=4)
        h = gan.fit_gan(g_net, d_net, images, num_epochs=1, batch_size=64, seed=3)
        runs.append(h.steps["loss_g"])
    assert runs[0] == runs[1]


def test_old_histories_without_steps_still_load():
    data = gm.History(step_loss=[1.0], epochs={"loss": [1.0]}).to_dict()
    del data["steps"]
    assert gm.History.from_dict(data).steps == {}


def test_the_toy_gan_moves_towards_the_data():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    g_net, d_net = gan_toy.ToyGenerator(noise_dim=2), gan_toy.ToyDiscriminator()
    opt_g = torch.optim.Adam(g_net.parameters(), 1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d_net.parameters(), 1e-3, betas=(0.5, 0.999))
    centers = gan_toy.ring_centers()

    def distance() -> float:
        with torch.no_grad():
            points = g_net(torch.randn(2000, 2, generator=g))
        return gan_toy.mode_coverage(points, centers)["distance"]

    before = distance()
    for _ in range(400):
        real = gan_toy.ring_of_gaussians(256, generator=g)
        gan.gan_step(g_net, d_net, opt_g, opt_d, [real], latent_dim=2, noise=g)
    after = distance()
    assert after < 0.8 * before, (before, after)


def test_mode_coverage_counts_modes():
    centers = gan_toy.ring_centers()
    g = torch.Generator().manual_seed(0)
    all_modes = gan_toy.ring_of_gaussians(4000, generator=g)
    one_mode = centers[0] + 0.05 * torch.randn(4000, 2, generator=g)
    assert gan_toy.mode_coverage(all_modes, centers)["modes"] == 8
    cov = gan_toy.mode_coverage(one_mode, centers)
    assert cov["modes"] == 1 and cov["quality"] > 0.95
    far = gan_toy.mode_coverage(torch.zeros(10, 2), centers)
    assert far["quality"] == 0 and far["distance"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    "call, exception, pattern",
    [
        (lambda: gan.generator_loss(torch.zeros(2), kind="bogus"), ValueError, "bogus"),
        (
            lambda: gan.discriminator_loss(torch.zeros(2), torch.zeros(2), kind="x"),
            ValueError,
            "standard",
        ),
        (lambda: gan.generator_loss(torch.zeros(0)), ValueError, "empty"),
        (
            lambda: gan.generator_loss(torch.zeros(2, dtype=torch.long)),
            TypeError,
            "float",
        ),
        (lambda: gan.Generator(latent_dim=0), ValueError, "latent_dim"),
        (lambda: gan.Discriminator(channels=-1), ValueError, "channels"),
        (
            lambda: gan.Generator(latent_dim=4)(torch.zeros(2, 5)),
            ValueError,
            r"\(B, 4\)",
        ),
        (lambda: gan.Discriminator()(torch.zeros(2, 1, 14, 14)), ValueError, "28, 28"),
        (lambda: gan_toy.ring_of_gaussians(0), ValueError, "n must be"),
        (
            lambda: gan_toy.mode_coverage(torch.zeros(3, 3), gan_toy.ring_centers()),
            ValueError,
            r"\(N, 2\)",
        ),
    ],
)
def test_bad_input_is_explained(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


@pytest.mark.parametrize(
    "kwargs, exception, pattern",
    [
        (dict(k=0), ValueError, "k must be"),
        (dict(lr_g=-1e-3), ValueError, "lr_g"),
        (dict(lr_d=float("nan")), ValueError, "lr_d"),
        (dict(loss="wasserstein"), ValueError, "wasserstein"),
        (dict(batch_size=1000), ValueError, "at least k \\* batch_size"),
        (dict(num_epochs=-1), ValueError, "num_epochs"),
        (dict(num_epochs=True), ValueError, "num_epochs"),
        (dict(lr_g=0), ValueError, "lr_g must be a finite number > 0, got 0"),
        (dict(lr_d=float("inf")), ValueError, "lr_d"),
        (dict(lr_g="2e-4"), TypeError, "lr_g must be a finite number > 0, got str"),
        (dict(lr_d=None), TypeError, "lr_d"),
        (dict(seed=-3), ValueError, "seed must be an int in"),
        (dict(seed=0.5), TypeError, "seed must be an int or None, got float"),
        (dict(callback="x"), TypeError, "callback must be callable or None"),
        (dict(step_callback=3), TypeError, "step_callback must be callable"),
    ],
)
def test_fit_gan_refuses_bad_settings(images, kwargs, exception, pattern):
    args = dict(num_epochs=1, progress=False)
    args.update(kwargs)
    with pytest.raises(exception, match=pattern):
        gan.fit_gan(
            gan.Generator(latent_dim=4, channels=2), gan.Discriminator(), images, **args
        )


def test_fit_gan_refuses_images_of_another_shape():
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        gan.fit_gan(
            gan.Generator(),
            gan.Discriminator(),
            torch.zeros(10, 1, 8, 8, dtype=torch.uint8),
            num_epochs=1,
        )
    with pytest.raises(TypeError, match="uint8"):
        gan.fit_gan(
            gan.Generator(),
            gan.Discriminator(),
            torch.zeros(10, 1, 28, 28),
            num_epochs=1,
        )


@pytest.mark.parametrize(
    "generator, discriminator, pattern",
    [
        (lambda z: z, gan.Discriminator(channels=2), "generator must be a torch.nn"),
        (gan.Generator(latent_dim=4, channels=2), "D", "discriminator must be"),
        (nn.Linear(4, 4), gan.Discriminator(channels=2), "latent_dim >= 1"),
    ],
)
def test_fit_gan_refuses_what_is_not_a_generator_or_discriminator(
    images, generator, discriminator, pattern
):
    with pytest.raises(TypeError, match=pattern):
        gan.fit_gan(generator, discriminator, images, num_epochs=1, progress=False)


class StopTraining(Exception):
    pass


def failing_on_call(monkeypatch, name, call, value):
    """Make ``gan.<name>`` return ``value`` (or raise it, an exception type) on its
    ``call``-th call; returns the finite values it gave before."""
    original, given = getattr(gan, name), []

    def loss(*args, **kwargs):
        out = original(*args, **kwargs)
        if len(given) + 1 == call:
            if isinstance(value, type):
                raise value
            return out * value  # non-finite gradients too
        given.append(out.item())
        return out

    monkeypatch.setattr(gan, name, loss)
    return given


def small_gan():
    torch.manual_seed(0)
    return gan.Generator(latent_dim=4, channels=2), gan.Discriminator(channels=2)


def fit_small(g_net, d_net, images, **kwargs):
    # 512 images, k = 2 batches of 32 per generator step: 8 steps per epoch
    args = dict(num_epochs=2, k=2, batch_size=32, progress=False, seed=0, lr_d=1e-3)
    return gan.fit_gan(g_net, d_net, images, **{**args, **kwargs})


@pytest.mark.parametrize(
    "name, call, value, message",
    [
        # the 2nd discriminator step of generator step 3 of epoch 2 (step 11 overall)
        ("discriminator_loss", 2 * 10 + 2, math.nan, "discriminator loss became nan"),
        ("generator_loss", 11, math.inf, "generator loss became inf"),
    ],
)
def test_fit_gan_stops_at_a_non_finite_loss_before_its_step(
    images, monkeypatch, name, call, value, message
):
    g_net, d_net = small_gan()
    given = failing_on_call(monkeypatch, name, call, value)
    with pytest.raises(gm.train.DivergedError) as caught:
        fit_small(g_net, d_net, images)
    exc = caught.value
    # the same run stopped by an exception at the same call
    monkeypatch.undo()
    g_ref, d_ref = small_gan()
    given_ref = failing_on_call(monkeypatch, name, call, StopTraining)
    with pytest.raises(StopTraining):
        fit_small(g_ref, d_ref, images)
    text = str(exc)
    assert f"{message} at epoch 2, step 3 of 8 (global step 11)" in text
    assert exc.term == ("loss_d" if name == "discriminator_loss" else "loss_g")
    assert (exc.epoch, exc.step, exc.global_step) == (2, 3, 11)
    assert exc.last_finite == pytest.approx(given[-1], rel=1e-6)
    assert f"{given[-1]:.6g}" in text and given == given_ref
    if name == "discriminator_loss":
        assert "discriminator step 2 of 2" in text and "lr_d=0.001" in text
    else:
        assert "lr_g=0.0002" in text
    for net, ref in ((g_net, g_ref), (d_net, d_ref)):
        for p, q in zip(net.state_dict().values(), ref.state_dict().values()):
            assert torch.isfinite(p.float()).all()
            assert torch.equal(p, q)
    history = exc.history
    assert all(len(v) == 10 for v in history.steps.values())
    assert history.step_loss == history.steps["loss_g"]
    assert all(len(v) == 1 for v in history.epochs.values())
    assert history.num_images == 10 * 64 and not g_net.training


def test_fit_gan_off_the_cpu_names_the_first_non_finite_step(images, monkeypatch):
    monkeypatch.setattr(gan, "_check_interval", lambda device: 3)
    g_net, d_net = small_gan()
    given = failing_on_call(monkeypatch, "generator_loss", 5, math.nan)
    with pytest.raises(gm.train.DivergedError, match="checked every 3 steps") as caught:
        fit_small(g_net, d_net, images)
    exc = caught.value  # found at step 6, named at step 5
    assert (exc.epoch, exc.step, exc.term) == (1, 5, "loss_g")
    assert exc.history.steps["loss_g"] == pytest.approx(given, rel=1e-6)


def test_a_diverging_gan_step_raises_before_its_optimizer_step():
    g_net, d_net = gan_toy.ToyGenerator(noise_dim=2), gan_toy.ToyDiscriminator()
    opt_g = torch.optim.Adam(g_net.parameters(), 1e-3)
    opt_d = torch.optim.Adam(d_net.parameters(), 1e-3)
    before = [p.detach().clone() for p in d_net.parameters()]
    real = torch.full((8, 2), math.nan)
    with pytest.raises(gm.train.DivergedError, match="discriminator loss became nan"):
        gan.gan_step(
            g_net, d_net, opt_g, opt_d, [real], latent_dim=2, check_finite=True
        )
    assert all(torch.equal(p, q) for p, q in zip(d_net.parameters(), before))
