"""The live toy-GAN trainer: the widget driven by code, the trainer's settings,
learning, repeatability and errors, and the headless snapshots."""

import asyncio
import base64
import importlib.util
import sys
import threading

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

import gmlib.widgets as widgets_module  # noqa: E402
from gmlib.widgets import ToyGANExplorer, ToyGANTrainer, run_toy_gan  # noqa: E402
from gmlib.widgets import __file__ as widgets_path  # noqa: E402

SMALL = dict(hidden=32, layers=2, batch_size=64)  # fast where learning is not tested


def adam_steps(opt: torch.optim.Optimizer) -> float:
    """How many steps an Adam optimizer has taken (from its first parameter)."""
    return float(opt.state[opt.param_groups[0]["params"][0]]["step"])


def weights(trainer: ToyGANTrainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.generator.parameters()] + [
        p.detach().clone() for p in trainer.discriminator.parameters()
    ]


def test_the_trainer_needs_no_ipywidgets(monkeypatch):
    """A fresh copy of the module, loaded where ipywidgets and IPython cannot be
    imported, still trains and draws; only the widget needs them."""
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    monkeypatch.setitem(sys.modules, "IPython", None)
    spec = importlib.util.spec_from_file_location("gmlib._widgets_copy", widgets_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    t = module.ToyGANTrainer(chunk=3, total_steps=3, **SMALL)
    assert t.train_chunk() > 0 and t.done
    assert t.figure().axes
    with pytest.raises(ImportError):
        module.ToyGANExplorer(trainer=t)


def test_explorer_driven_by_its_controls_and_buttons(monkeypatch):
    pytest.importorskip("ipywidgets")
    # as in plain Python: no asyncio loop runs (another test may have left one set)
    monkeypatch.setattr(widgets_module, "_running_loop", lambda: None)
    ex = ToyGANExplorer(seed=0, **SMALL)
    t = ex.trainer
    assert ex.redraws == 1 and len(ex.output.outputs) == 1  # the figure at step 0
    ex.controls["k"].value = 3
    ex.controls["lr_g"].value = 2e-4
    ex.controls["lr_d"].value = 5e-4
    ex.controls["loss"].value = "saturating"
    ex.controls["chunk"].value = 5
    assert (t.k, t.loss, t.chunk) == (3, "saturating", 5)
    assert [g["lr"] for g in t.opt_g.param_groups] == [2e-4]
    assert [g["lr"] for g in t.opt_d.param_groups] == [5e-4]

    ex.buttons["train"].click()  # no running loop under pytest: one chunk
    assert t.step == 5
    assert adam_steps(t.opt_g) == 5 and adam_steps(t.opt_d) == 15  # k = 3 D steps
    assert len(t.history["loss_d"]) == 5 and t.coverage["step"] == [0, 5]
    (out,) = ex.output.outputs  # the old figure was replaced
    assert base64.b64decode(out["data"]["image/png"])[:4] == b"\x89PNG"
    assert ex.redraws == 2 and "step 5" in ex.status.value

    ex.buttons["pause"].click()
    ex.controls["k"].value = 1
    ex.buttons["train"].click()  # continues from step 5 with the new k
    assert t.step == 10 and adam_steps(t.opt_d) == 15 + 5

    ex.controls["noise_dim"].value = 4  # needs a reset, and says so
    assert t.pending_reset == ["noise_dim"] and "Reset" in ex.status.value
    ex.buttons["train"].click()  # trains on with the networks it has
    assert t.step == 15 and t.generator.latent_dim == 2
    ex.buttons["reset"].click()
    assert t.step == 0 and t.pending_reset == [] and t.generator.latent_dim == 4
    assert t.history["loss_g"] == [] and ex.redraws == 5
    fresh = ToyGANTrainer(seed=0, noise_dim=4, **SMALL)
    assert all(torch.equal(a, b) for a, b in zip(weights(t), weights(fresh)))
    assert [g["lr"] for g in t.opt_g.param_groups] == [2e-4]  # settings are kept
    with pytest.raises(TypeError, match="not both"):
        ToyGANExplorer(trainer=t, k=2)


def test_train_in_a_running_loop_is_a_task_that_pause_stops():
    pytest.importorskip("ipywidgets")
    ex = ToyGANExplorer(seed=0, chunk=5, **SMALL)

    async def session():
        ex.on_train()  # returns at once: the chunks run in a task
        assert ex.trainer.step == 0 and ex._task is not None
        while ex.trainer.step < 10:
            await asyncio.sleep(0.01)  # the kernel would handle messages here
        ex.on_pause()
        await ex._task
        return ex.trainer.step

    result = {}  # a fresh thread owns its own event loop, whatever this one holds
    thread = threading.Thread(target=lambda: result.update(step=asyncio.run(session())))
    thread.start()
    thread.join()
    step = result["step"]
    assert step >= 10 and step % 5 == 0 and ex.trainer.step == step
    assert ex.redraws == 1 + step // 5 and "paused" in ex.status.value


def test_samples_move_toward_the_data():
    t = ToyGANTrainer(seed=0, chunk=100, total_steps=300)
    start = t.coverage["distance"][0]
    while not t.done:
        assert t.train_chunk() > 0
    assert t.step == 300 and t.train_chunk() == 0.0  # nothing left to train
    assert t.coverage["step"] == [0, 100, 200, 300]
    assert t.coverage["distance"][-1] < 0.6 * start  # mean distance to nearest mode
    assert len(t.history["d_real"]) == 300
    assert all(0 <= p <= 1 for p in t.history["d_real"] + t.history["d_fake"])


def test_same_seed_same_run_and_the_global_rng_is_untouched():
    state = torch.get_rng_state()
    runs = []
    for seed in (7, 7, 8):
        t = ToyGANTrainer(seed=seed, chunk=10, total_steps=20, k=2, **SMALL)
        t.train_chunk()
        t.lr_g = 3e-4  # a change between chunks is part of the run
        t.train_chunk()
        runs.append((t.history, t.coverage, weights(t)))
    assert runs[0][:2] == runs[1][:2]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][2], runs[1][2]))
    assert runs[0][0] != runs[2][0]  # another seed, another run
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize(
    "setting, value, message",
    [
        ("k", 0, "k must be an int >= 1"),
        ("lr_g", -1e-3, "lr_g must be a finite number > 0"),
        ("lr_d", float("nan"), "lr_d must be a finite number > 0"),
        ("loss", "wasserstein", "unknown loss 'wasserstein'"),
        ("noise_dim", 0, "noise_dim must be an int >= 1"),
        ("chunk", 2.5, "chunk must be an int >= 1"),
        ("seed", -1, "seed must be an int >= 0"),
    ],
)
def test_bad_settings_are_refused(setting, value, message):
    with pytest.raises(ValueError, match=message):
        ToyGANTrainer(**{setting: value}, **SMALL)
    t = ToyGANTrainer(**SMALL)
    before = getattr(t, setting)
    with pytest.raises(ValueError, match=message):
        t.set(**{"batch_size": 32, setting: value})  # all checked, then applied
    with pytest.raises(ValueError, match=message):
        setattr(t, setting, value)
    assert getattr(t, setting) == before and t.batch_size == SMALL["batch_size"]


def test_unknown_setting_is_refused():
    with pytest.raises(TypeError, match="unknown setting 'steps'"):
        ToyGANTrainer(**SMALL).set(steps=10)


def test_run_toy_gan_snapshots():
    t = run_toy_gan(40, every=20, grid=30, n=100, seed=0, **SMALL)
    assert t.step == 40 and [s["step"] for s in t.snapshots] == [0, 20, 40]
    for snap in t.snapshots:
        assert snap["samples"].shape == (100, 2)
        assert snap["surface"].shape == (30, 30)
        assert 0 <= snap["surface"].min() and snap["surface"].max() <= 1
        assert 0 <= snap["modes"] <= 8 and 0 <= snap["quality"] <= 1
    assert not torch.equal(t.snapshots[0]["samples"], t.snapshots[-1]["samples"])
    fig = t.figure(t.snapshots[1])  # curves up to step 20 only
    assert fig._suptitle.get_text().startswith("step 20:")
    assert len(fig.axes[1].lines[0].get_xdata()) == 20
