import math

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
