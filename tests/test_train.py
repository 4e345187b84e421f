import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gmlib as gm


def digits(n=512):
    return gm.load("digits", split="train", limit=n)


def mlp_autoencoder():
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 16),
        nn.ReLU(),
        nn.Linear(16, 64),
        nn.Unflatten(1, (1, 8, 8)),
    )


def reconstruction(model, x):
    return F.mse_loss(model(x), x)


def test_loss_falls_and_history_has_the_right_shape():
    x, _ = digits()
    gm.seed_everything(0)
    history = gm.fit(
        mlp_autoencoder(),
        x,
        loss_fn=reconstruction,
        num_epochs=4,
        batch_size=100,
        lr=1e-2,
        seed=0,
    )
    steps_per_epoch = math.ceil(len(x) / 100)
    assert len(history.step_loss) == 4 * steps_per_epoch
    assert list(history.epochs) == ["loss"] and len(history.loss) == 4
    assert history.loss[-1] < 0.5 * history.loss[0]
    # the epoch mean weights each step by its batch size (the last batch is smaller)
    weights = [100] * (steps_per_epoch - 1) + [len(x) - 100 * (steps_per_epoch - 1)]
    batch_losses = history.step_loss[:steps_per_epoch]
    first = sum(w * loss for w, loss in zip(weights, batch_losses)) / len(x)
    assert history.loss[0] == pytest.approx(first, rel=1e-5)
    assert history.num_images == 4 * len(x) and history.images_per_second > 0
    again = gm.train.History.from_dict(history.to_dict())
    assert again == history


def test_same_seed_same_run():
    x, _ = digits(200)
    runs = []
    for _ in range(2):
        gm.seed_everything(1)
        runs.append(
            gm.fit(
                mlp_autoencoder(),
                x,
                loss_fn=reconstruction,
                num_epochs=2,
                batch_size=64,
                seed=5,
            ).step_loss
        )
    assert runs[0] == runs[1]


def test_dict_losses_are_averaged_and_labels_are_passed():
    x, y = digits()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def classify(model, x, y):
        logits = model(x)
        return {
            "loss": F.cross_entropy(logits, y),
            "accuracy": (logits.argmax(1) == y).float().mean(),
        }

    history = gm.fit(
        model, x, labels=y, loss_fn=classify, num_epochs=15, batch_size=64, lr=1e-2
    )
    assert set(history.epochs) == {"loss", "accuracy"}
    assert history.epochs["accuracy"][-1] > 0.8 > history.epochs["accuracy"][0]
    assert not model.training  # handed back ready for evaluation


def test_accelerator_path_runs_on_the_cpu_under_the_flag(monkeypatch):
    """bf16 autocast and channels_last, as on CUDA: a mistake here must fail a test."""
    monkeypatch.setenv("GMLIB_ACCEL_ON_CPU", "1")
    x, _ = digits(256)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1)
    )
    seen = {}

    def loss_fn(model, x):
        out = model(x)
        seen.update(
            channels_last=x.is_contiguous(memory_format=torch.channels_last),
            autocast=torch.is_autocast_enabled("cpu"),
            out_dtype=out.dtype,
        )
        return F.mse_loss(out.float(), x)

    history = gm.fit(model, x, loss_fn=loss_fn, num_epochs=6, batch_size=64, lr=3e-3)
    assert seen == {
        "channels_last": True,
        "autocast": True,
        "out_dtype": torch.bfloat16,
    }
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[0].weight.dtype == torch.float32  # weights stay fp32 under autocast
    assert history.loss[-1] < 0.7 * history.loss[0]


def test_accelerator_path_off_by_default_on_cpu():
    x, _ = digits(64)
    seen = {}

    def loss_fn(model, x):
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        return reconstruction(model, x)

    gm.fit(mlp_autoencoder(), x, loss_fn=loss_fn, num_epochs=1, device="cpu")
    assert seen == {"autocast": False}


def test_progress_can_be_silenced(capsys):
    x, _ = digits(128)
    gm.fit(
        mlp_autoencoder(),
        x,
        loss_fn=reconstruction,
        num_epochs=1,
        progress=True,
        desc="shown",
    )
    assert "shown" in capsys.readouterr().err
    gm.fit(
        mlp_autoencoder(),
        x,
        loss_fn=reconstruction,
        num_epochs=1,
        progress=False,
        desc="hidden",
    )
    assert "hidden" not in capsys.readouterr().err


def test_progress_follows_the_environment(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("GMLIB_PROGRESS", "")
    assert gm.train.progress_enabled()
    monkeypatch.setenv("GMLIB_PROGRESS", "0")
    assert not gm.train.progress_enabled()
    assert gm.train.progress_enabled(True)


def test_callback_runs_each_epoch_and_can_stop():
    x, _ = digits(128)
    calls = []

    def callback(epoch, model, history):
        calls.append((epoch, len(history.loss)))
        return epoch == 2

    history = gm.fit(
        mlp_autoencoder(), x, loss_fn=reconstruction, num_epochs=10, callback=callback
    )
    assert calls == [(0, 1), (1, 2), (2, 3)] and len(history.loss) == 3


def test_bad_input_is_explained():
    x, y = digits(32)
    model = mlp_autoencoder()
    with pytest.raises(TypeError, match="uint8"):
        gm.fit(model, x.float(), loss_fn=reconstruction, num_epochs=1)
    with pytest.raises(ValueError, match="labels must be"):
        gm.fit(model, x, labels=y[:5], loss_fn=reconstruction, num_epochs=1)
    with pytest.raises(ValueError, match="num_epochs"):
        gm.fit(model, x, loss_fn=reconstruction, num_epochs=-1)
    with pytest.raises(ValueError, match="scalar"):
        gm.fit(model, x, loss_fn=lambda m, x: (m(x) - x) ** 2, num_epochs=1)
    with pytest.raises(KeyError, match="'loss'"):
        gm.fit(
            model, x, loss_fn=lambda m, x: {"mse": reconstruction(m, x)}, num_epochs=1
        )


def test_default_adam_matches_torch_reference_adam():
    """fit's fused Adam is the same algorithm as torch.optim.Adam's default
    implementation."""
    torch.manual_seed(0)
    a, b = mlp_autoencoder(), mlp_autoencoder()
    b.load_state_dict(a.state_dict())
    fused = gm.train.adam(a.parameters(), lr=1e-2, device=torch.device("cpu"))
    reference = torch.optim.Adam(b.parameters(), lr=1e-2, foreach=False)
    x = torch.rand(16, 1, 8, 8)
    for _ in range(5):
        for model, opt in ((a, fused), (b, reference)):
            opt.zero_grad()
            reconstruction(model, x).backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_a_scheduler_is_built_for_the_whole_run_and_stepped_every_step():
    x, _ = digits(250)
    built = {}

    def one_cycle(opt, total_steps):
        built["total_steps"] = total_steps
        built["scheduler"] = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=1e-2, total_steps=total_steps
        )
        return built["scheduler"]

    lrs = []
    gm.fit(
        mlp_autoencoder(),
        x,
        loss_fn=reconstruction,
        num_epochs=3,
        batch_size=100,
        scheduler=one_cycle,
        callback=lambda epoch, model, h: lrs.append(
            built["scheduler"].get_last_lr()[0]
        ),
        seed=0,
    )
    assert built["total_steps"] == 3 * math.ceil(250 / 100)
    assert built["scheduler"].last_epoch == built["total_steps"]  # every step, no more
    assert lrs[0] > lrs[-1] and lrs[-1] < 1e-3  # annealed: under a tenth of the peak


class StopTraining(Exception):
    pass


def failing_at(call, value, counter):
    """reconstruction, but ``value`` (nan, inf, or an exception to raise) at the
    ``call``-th call; ``counter`` records every finite loss returned."""

    def loss_fn(model, x):
        loss = reconstruction(model, x)
        if len(counter) + 1 == call:
            if isinstance(value, type):
                raise value
            return loss * value  # non-finite gradients too
        counter.append(loss.item())
        return loss

    return loss_fn


def fit_digits(model, loss_fn, **kwargs):
    x, _ = digits(256)  # 3 steps per epoch of 100, 100 and 56 images
    args = dict(num_epochs=3, batch_size=100, lr=1e-2, seed=0, progress=False)
    return gm.fit(model, x, loss_fn=loss_fn, **{**args, **kwargs})


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_before_its_step(value):
    torch.manual_seed(0)
    model, reference = mlp_autoencoder(), mlp_autoencoder()
    reference.load_state_dict(model.state_dict())
    start = [p.detach().clone() for p in model.parameters()]
    seen, seen_ref = [], []
    with pytest.raises(gm.train.DivergedError) as caught:
        fit_digits(model, failing_at(5, value, seen))
    # the same run stopped by an exception at the same call: four optimizer steps
    with pytest.raises(StopTraining):
        fit_digits(reference, failing_at(5, StopTraining, seen_ref))
    exc = caught.value
    assert isinstance(exc, FloatingPointError) and not isinstance(exc, ValueError)
    assert (exc.epoch, exc.step, exc.global_step) == (2, 2, 5)
    assert exc.term == "loss" and str(exc.value) == str(value)
    message = str(exc)
    assert f"loss became {value} at epoch 2, step 2 of 3 (global step 5)" in message
    assert exc.last_finite == seen[-1] and f"{seen[-1]:.6g}" in message
    for hint in ("lower learning rate", "lr=0.01", "clip", "log(0)", "division by"):
        assert hint in message
    assert seen == seen_ref and len(seen) == 4
    for p, q, p0 in zip(model.parameters(), reference.parameters(), start):
        assert torch.isfinite(p).all()
        assert torch.equal(p, q)
    assert not all(torch.equal(p, p0) for p, p0 in zip(model.parameters(), start))
    history = exc.history  # the run up to the last finite step, for a plot
    assert history.step_loss == pytest.approx(seen, rel=1e-6)
    assert len(history.loss) == 1 and history.num_images == 256 + 100
    assert history.seconds > 0 and not model.training


def test_a_non_finite_first_loss_has_no_last_finite_value():
    seen = []
    with pytest.raises(gm.train.DivergedError, match="no step before it") as caught:
        fit_digits(mlp_autoencoder(), failing_at(1, -math.inf, seen))
    assert caught.value.global_step == 1 and caught.value.last_finite is None
    assert caught.value.history.step_loss == [] and seen == []


def test_a_dict_loss_names_its_non_finite_term():
    x, _ = digits(64)

    def loss_fn(model, x):
        mse = reconstruction(model, x)
        kl = torch.log(torch.zeros(()))  # log(0) = -inf
        return {"loss": mse + kl, "mse": mse, "kl": kl}

    with pytest.raises(gm.train.DivergedError, match="kl=-inf") as caught:
        gm.fit(mlp_autoencoder(), x, loss_fn=loss_fn, num_epochs=1, progress=False)
    assert "loss=-inf" in str(caught.value) and "mse=" in str(caught.value)


def handmade_bce(model, x):
    """Binary cross-entropy through log(sigmoid), which is log(0) once the logits are
    large."""
    p = torch.sigmoid(model(x))
    return -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).mean()


def test_a_real_divergence_is_caught_with_finite_weights():
    torch.manual_seed(0)
    model = mlp_autoencoder()
    with pytest.raises(gm.train.DivergedError, match="lr=1e[+]06") as caught:
        fit_digits(model, handmade_bce, lr=1e6, batch_size=64)
    exc = caught.value
    assert exc.global_step == len(exc.history.step_loss) + 1
    assert all(math.isfinite(v) for v in exc.history.step_loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # the same run at a sane learning rate stays finite
    history = fit_digits(mlp_autoencoder(), handmade_bce, lr=1e-2, batch_size=64)
    assert all(math.isfinite(v) for v in history.step_loss)


@pytest.mark.parametrize(
    "call, epoch, step",
    [(11, 2, 3), (15, 2, 7)],  # found at step 4 / the epoch's end
)
def test_off_the_cpu_the_check_every_few_steps_still_names_the_first_bad_step(
    monkeypatch, call, epoch, step
):
    monkeypatch.setattr(gm.train, "_check_interval", lambda device: 4)
    seen = []
    with pytest.raises(gm.train.DivergedError, match="checked every 4 steps") as caught:
        fit_digits(mlp_autoencoder(), failing_at(call, math.nan, seen), batch_size=32)
    exc = caught.value  # 8 steps per epoch
    assert (exc.epoch, exc.step, exc.global_step) == (epoch, step, call)
    assert exc.history.step_loss == pytest.approx(seen[: call - 1], rel=1e-6)
    assert exc.last_finite == pytest.approx(seen[call - 2], rel=1e-6)
    assert exc.history.num_images == 256 + 32 * (step - 1)


def test_train_or_load_keeps_no_checkpoint_of_a_diverged_run(tmp_path):
    x, _ = digits(64)

    def train(model):
        return gm.fit(
            model, x, loss_fn=handmade_bce, num_epochs=5, lr=1e6, progress=False
        )

    with pytest.raises(gm.train.DivergedError):
        gm.train_or_load(
            "diverging",
            {"lr": 1e6},
            build=mlp_autoencoder,
            train=train,
            directory=tmp_path,
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, exception, pattern",
    [
        (dict(lr=0), ValueError, "lr must be a finite number > 0, got 0"),
        (dict(lr=-1e-3), ValueError, "lr must be"),
        (dict(lr=math.nan), ValueError, "lr must be"),
        (dict(lr=math.inf), ValueError, "lr must be"),
        (dict(lr="1e-3"), TypeError, "lr must be a finite number > 0, got str"),
        (dict(lr=True), TypeError, "lr must be"),
        (dict(lr=None), TypeError, "lr must be"),
        (dict(num_epochs=True), ValueError, "num_epochs must be an int >= 0"),
        (dict(num_epochs=1.5), ValueError, "num_epochs"),
        (dict(batch_size=0), ValueError, "batch_size must be an int >= 1, got 0"),
        (dict(batch_size=True), ValueError, "batch_size"),
        (dict(seed=-1), ValueError, "seed must be an int in"),
        (dict(seed=2**64), ValueError, "seed"),
        (dict(seed=1.5), TypeError, "seed must be an int or None, got float"),
        (dict(seed="0"), TypeError, "seed"),
        (dict(seed=False), TypeError, "seed"),
        (dict(loss_fn="mse"), TypeError, "loss_fn must be callable, got str"),
        (dict(model=lambda x: x), TypeError, "model must be a torch.nn.Module"),
        (dict(labels=torch.zeros(32)), TypeError, "integer .*float32"),
        (dict(labels=torch.zeros(32, dtype=torch.bool)), TypeError, "integer"),
        (dict(labels=[0] * 32), TypeError, "labels must be .* got list"),
        (dict(labels=torch.zeros(31, dtype=torch.long)), ValueError, "N = 32"),
        (dict(optimizer="adam"), TypeError, "optimizer must be"),
        (dict(callback=1), TypeError, "callback must be callable or None"),
        (dict(scheduler="cosine"), TypeError, "scheduler must be"),
    ],
)
def test_fit_refuses_bad_settings(kwargs, exception, pattern):
    x, _ = digits(32)
    args = dict(
        model=mlp_autoencoder(), loss_fn=reconstruction, num_epochs=1, progress=False
    )
    args.update(kwargs)
    with pytest.raises(exception, match=pattern):
        gm.fit(images=x, **args)


def test_fit_takes_numpy_numbers_for_lr_and_seed():
    runs = []
    for lr, seed in ((np.float32(1e-2), np.int64(3)), (1e-2, 3)):
        torch.manual_seed(0)
        model = mlp_autoencoder()
        runs.append(fit_digits(model, reconstruction, lr=lr, seed=seed, num_epochs=1))
    assert runs[0].step_loss == pytest.approx(runs[1].step_loss, rel=1e-4)
