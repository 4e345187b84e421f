import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

import gmlib as gm
from gmlib import checkpoints

SETTINGS = {"num_epochs": 1, "width": 4}


class Trainer:
    """Counts how often it trains.

    "Training" sets the weights to a recognizable value.
    """

    def __init__(self, value=1.5):
        self.calls, self.value = 0, value

    def __call__(self, model):
        self.calls += 1
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(self.value)
        return gm.History(
            step_loss=[2.0, 1.0], epochs={"loss": [1.5]}, seconds=0.1, num_images=8
        )


def build(width=4):
    return nn.Linear(3, width)


def test_trains_once_then_loads(tmp_path, capsys):
    trainer = Trainer()
    model, history = gm.train_or_load(
        "tiny", SETTINGS, build=build, train=trainer, directory=tmp_path
    )
    again, history2 = gm.train_or_load(
        "tiny", SETTINGS, build=build, train=trainer, directory=tmp_path
    )
    assert trainer.calls == 1
    assert "loaded tiny" in capsys.readouterr().out
    assert (
        torch.equal(again.weight, model.weight)
        and float(again.weight[0, 0].detach()) == 1.5
    )
    assert history2 == history and not again.training
    assert list(tmp_path.iterdir()) == [
        checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path)
    ]


def test_other_settings_train_anew(tmp_path):
    trainer = Trainer()
    gm.train_or_load("tiny", SETTINGS, build=build, train=trainer, directory=tmp_path)
    gm.train_or_load(
        "tiny",
        dict(SETTINGS, num_epochs=2),
        build=build,
        train=trainer,
        directory=tmp_path,
    )
    assert trainer.calls == 2 and len(list(tmp_path.iterdir())) == 2


def test_default_directory_is_in_the_cache():
    path = checkpoints.checkpoint_path("tiny", SETTINGS)
    assert path.parent == gm.data.cache_dir() / "checkpoints"
    assert path.name == f"tiny-{checkpoints.settings_key(SETTINGS)}.pt"
    assert checkpoints.settings_key({"a": 1, "b": 2}) == checkpoints.settings_key(
        {"b": 2, "a": 1}
    )
    with pytest.raises(ValueError, match="checkpoint name"):
        checkpoints.checkpoint_path("../escape", SETTINGS)


def test_corrupt_file_is_retrained_with_a_message(tmp_path):
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path)
    path.write_bytes(b"this is not a checkpoint")
    trainer = Trainer()
    with pytest.warns(UserWarning, match="unusable.*retraining"):
        model, _ = gm.train_or_load(
            "tiny", SETTINGS, build=build, train=trainer, directory=tmp_path
        )
    assert trainer.calls == 1
    gm.train_or_load("tiny", SETTINGS, build=build, train=trainer, directory=tmp_path)
    assert trainer.calls == 1  # the retrained file replaced the corrupt one


def test_truncated_file_is_retrained(tmp_path):
    trainer = Trainer()
    gm.train_or_load("tiny", SETTINGS, build=build, train=trainer, directory=tmp_path)
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(UserWarning, match="unusable"):
        gm.train_or_load(
            "tiny", SETTINGS, build=build, train=trainer, directory=tmp_path
        )
    assert trainer.calls == 2


def test_mismatched_weights_are_retrained_from_a_fresh_model(tmp_path):
    gm.train_or_load("tiny", SETTINGS, build=build, train=Trainer(), directory=tmp_path)
    trainer = Trainer(value=-2.0)
    with pytest.warns(UserWarning, match="size mismatch|Missing|Unexpected"):
        model, _ = gm.train_or_load(
            "tiny",
            SETTINGS,
            build=lambda: nn.Linear(3, 5),
            train=trainer,
            directory=tmp_path,
        )
    assert trainer.calls == 1 and torch.all(model.weight == -2.0)


def test_mismatched_settings_inside_the_file_are_retrained(tmp_path):
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path)
    checkpoints.save_atomic(
        {
            "format": checkpoints.FORMAT,
            "name": "tiny",
            "settings": {"other": 1},
            "state_dict": build().state_dict(),
            "history": Trainer()(build()).to_dict(),
        },
        path,
    )
    trainer = Trainer()
    with pytest.warns(UserWarning, match="other settings"):
        gm.train_or_load(
            "tiny", SETTINGS, build=build, train=trainer, directory=tmp_path
        )
    assert trainer.calls == 1


class NotAWeight:
    pass


def test_loads_are_weights_only(tmp_path):
    """A file of arbitrary pickled objects is refused, never unpickled into code."""
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path)
    torch.save(
        {
            "format": checkpoints.FORMAT,
            "name": "tiny",
            "settings": SETTINGS,
            "state_dict": build().state_dict(),
            "history": NotAWeight(),
        },
        path,
    )
    trainer = Trainer()
    with pytest.warns(UserWarning, match="unusable"):
        gm.train_or_load(
            "tiny", SETTINGS, build=build, train=trainer, directory=tmp_path
        )
    assert trainer.calls == 1


def test_failed_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    checkpoints.save_atomic({"w": torch.ones(3)}, path)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # as if the user stopped the kernel mid-save

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_atomic({"w": torch.zeros(3)}, path)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))


KILLED_MID_SAVE = textwrap.dedent("""
    import sys, time, torch
    from torch import nn
    import gmlib as gm
    from gmlib import checkpoints
    directory, ready = sys.argv[1], sys.argv[2]
    real_save = torch.save
    def slow_save(obj, f):
        f.write(b"PK\\x03\\x04 partial")  # the start of a zip, then nothing
        f.flush()
        open(ready, "w").close()
        time.sleep(60)  # killed here
    torch.save = slow_save
    gm.train_or_load(
        "tiny", {"num_epochs": 1, "width": 4}, build=lambda: nn.Linear(3, 4),
        train=lambda m: gm.History(), directory=directory,
    )
""")


def test_training_run_killed_mid_save_never_leaves_a_crashing_checkpoint(tmp_path):
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_SAVE, str(tmp_path / "ckpts"), str(ready)]
    )
    try:
        deadline = time.time() + 60
        while not ready.exists():
            assert proc.poll() is None, "the child exited before saving"
            assert time.time() < deadline, "the child never started saving"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path / "ckpts")
    assert not path.exists()  # only a stale temporary file
    assert [p.name.endswith(".part") for p in path.parent.iterdir()] == [True]
    trainer = Trainer()
    gm.train_or_load(
        "tiny", SETTINGS, build=build, train=trainer, directory=path.parent
    )
    model, _ = gm.train_or_load(
        "tiny", SETTINGS, build=build, train=trainer, directory=path.parent
    )
    assert trainer.calls == 1 and float(model.weight[0, 0].detach()) == 1.5


def test_train_must_return_a_history(tmp_path):
    with pytest.raises(TypeError, match="History"):
        gm.train_or_load(
            "tiny", SETTINGS, build=build, train=lambda m: [1.0], directory=tmp_path
        )


def test_model_comes_back_on_the_runtime_device_whether_trained_or_loaded(
    tmp_path, monkeypatch
):
    from gmlib import runtime

    # the meta device stands in for a GPU
    monkeypatch.setattr(runtime, "device", lambda: torch.device("meta"))
    trained, _ = gm.train_or_load(
        "tiny", SETTINGS, build=build, train=Trainer(), directory=tmp_path
    )
    loaded, _ = gm.train_or_load(
        "tiny", SETTINGS, build=build, train=Trainer(), directory=tmp_path
    )
    assert trained.weight.device.type == loaded.weight.device.type == "meta"
