import ast
import errno
import hashlib
import inspect
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
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
    whole = path.read_bytes()
    cuts = [0, 1, 4, 30, 100, len(whole) // 4, len(whole) // 2, len(whole) - 22]
    cuts += [len(whole) - 1]
    for calls, cut in enumerate(cuts, start=2):
        path.write_bytes(whole[:cut])
        with pytest.warns(UserWarning, match="unusable"):
            model, _ = gm.train_or_load(
                "tiny", SETTINGS, build=build, train=trainer, directory=tmp_path
            )
        assert trainer.calls == calls, cut
        assert torch.all(model.weight == 1.5)
        assert path.read_bytes() == whole  # the retrained file replaced the cut one


def test_random_bytes_are_retrained(tmp_path):
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path)
    rng = torch.Generator().manual_seed(0)
    trainer = Trainer()
    for size in (1, 64, 5000):
        for head in (b"", b"PK\x03\x04"):  # also as if a zip file
            noise = torch.randint(0, 256, (size,), generator=rng, dtype=torch.uint8)
            path.write_bytes(head + noise.numpy().tobytes())
            with pytest.warns(UserWarning, match="unusable"):
                model, _ = gm.train_or_load(
                    "tiny", SETTINGS, build=build, train=trainer, directory=tmp_path
                )
            assert torch.all(model.weight == 1.5)
    assert trainer.calls == 6


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


def test_training_run_killed_mid_save_never_leaves_a_crashing_checkpoint(tmp_path):
    """A run killed while it writes its checkpoint (a forked copy of this process: no
    second torch import). ``tests/test_faults.py`` kills runs at many more points."""
    ready, directory = tmp_path / "ready", tmp_path / "ckpts"
    pid = os.fork()
    if pid == 0:  # the training run
        try:
            real_write = os.write

            def slow_write(fd, data):
                real_write(fd, bytes(data[:100]))  # the first bytes, then nothing
                ready.touch()
                time.sleep(60)  # killed here

            os.write = slow_write
            gm.train_or_load(
                "tiny", SETTINGS, build=build, train=Trainer(), directory=directory
            )
        finally:
            os._exit(1)
    try:
        deadline = time.time() + 60
        while not ready.exists():
            assert os.waitpid(pid, os.WNOHANG) == (0, 0), "the run ended before saving"
            assert time.time() < deadline, "the run never started saving"
            time.sleep(0.01)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=directory)
    assert not path.exists()  # only a stale temporary file
    [part] = path.parent.iterdir()
    assert part.name.startswith(f".{path.name}.") and part.name.endswith(".part")
    assert part.stat().st_size == 100
    trainer = Trainer()
    gm.train_or_load(
        "tiny", SETTINGS, build=build, train=trainer, directory=path.parent
    )
    model, _ = gm.train_or_load(
        "tiny", SETTINGS, build=build, train=trainer, directory=path.parent
    )
    assert trainer.calls == 1 and float(model.weight[0, 0].detach()) == 1.5
    assert list(path.parent.iterdir()) == [path]  # the killed run's file is removed


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


# --- settings: strictly JSON, one canonical form --------------------------------------


def old_key(settings):
    """The key formula of earlier versions: every cache on disk was saved under it."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


GOLDEN = {
    "name": "golden",
    "lr": 0.001,
    "hidden": (512, 256),
    "epochs": 3,
    "beta": 0.25,
    "flags": {"binarized": True, "note": None},
    "text": "caf\u00e9",
}


def test_golden_key():
    """Pinned, so that another machine, Python or version computes the same key."""
    assert checkpoints.canonical_settings(GOLDEN) == (
        '{"beta": 0.25, "epochs": 3, "flags": {"binarized": true, "note": null}, '
        '"hidden": [512, 256], "lr": 0.001, "name": "golden", "text": "caf\\u00e9"}'
    )
    assert checkpoints.settings_key(GOLDEN) == "b7b2ff97f2ba"
    assert checkpoints.checkpoint_path("m", GOLDEN, directory="d").name == (
        "m-b7b2ff97f2ba.pt"
    )


KEYS_IN_ANOTHER_PROCESS = """
import json, sys

for settings in json.loads(sys.argv[1]):
    # the same settings, built in the reverse order
    rebuilt = {k: settings[k] for k in reversed(list(settings))}
    print(settings_key(rebuilt))
"""


def test_keys_are_the_same_in_another_process_and_insertion_order():
    """The key functions' own source, run by a bare interpreter (no torch import)
    with another hash seed."""
    from gmlib import zoo

    functions = [checkpoints.settings_key, checkpoints.canonical_settings]
    functions += [checkpoints._key, checkpoints._check_json]
    code = "\n".join(
        ["from __future__ import annotations", "import hashlib, json, math"]
        + ["from typing import Any"]
        + [inspect.getsource(f) for f in functions]
        + [KEYS_IN_ANOTHER_PROCESS]
    )
    cases = [GOLDEN, SETTINGS] + [zoo.settings(n, "smoke") for n in zoo.NAMES]
    seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(cases)],
        env=dict(os.environ, PYTHONHASHSEED=seed),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [checkpoints.settings_key(s) for s in cases]
    assert out[0] == "b7b2ff97f2ba" and len(set(out)) == len(cases)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_valid_settings_keep_their_old_keys(values):
    assert checkpoints.settings_key(values) == old_key(values)
    stored = json.loads(checkpoints.canonical_settings(values))
    assert checkpoints.canonical_settings(stored) == (
        checkpoints.canonical_settings(values)
    )


def test_the_course_settings_keep_their_old_keys():
    from gmlib import metrics, zoo

    cases = [metrics.SETTINGS]
    cases += [zoo.settings(n, b) for n in zoo.NAMES for b in gm.runtime.BUDGETS]
    for s in cases:
        assert checkpoints.settings_key(s) == old_key(s), s


def test_every_notebook_setting_is_a_valid_checkpoint_setting():
    """Each chapter's checkpoint settings are taken from ``cfg``: all of its values,
    at every budget, are JSON as they are."""
    notebooks = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
    checked = 0
    for notebook in notebooks:
        for cell in json.loads(notebook.read_text())["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] != "code" or "gm.settings(" not in source:
                continue
            lines = [  # IPython magics become `pass`
                line[: len(line) - len(line.lstrip())] + "pass"
                if line.lstrip().startswith("%")
                else line
                for line in source.splitlines()
            ]
            for node in ast.walk(ast.parse("\n".join(lines))):
                if isinstance(node, ast.Call) and ast.unparse(node.func) == (
                    "gm.settings"
                ):
                    cfg = eval(compile(ast.Expression(node), notebook.name, "eval"))
                    for budget, values in cfg._table.items():
                        assert checkpoints.settings_key(values), (notebook, budget)
                        checked += 1
    assert checked == 3 * len(notebooks)


class Activation:
    pass


@pytest.mark.parametrize(
    "bad, error, where",
    [
        (
            {"model": {"act": nn.ReLU()}},
            TypeError,
            "settings['model']['act']: a <class",
        ),
        ({"act": Activation()}, TypeError, "settings['act']: a <class"),
        ({"device": torch.device("cpu")}, TypeError, "settings['device']: a <class"),
        ({"fn": len}, TypeError, "settings['fn']: a <class"),
        ({"hidden": [8, 1j]}, TypeError, "settings['hidden'][1]: a <class 'complex'>"),
        (
            {"w": torch.tensor(1.0)},
            TypeError,
            "settings['w']: a <class 'torch.Tensor'>",
        ),
        ({"n": np.int64(3)}, TypeError, "settings['n']: a <class 'numpy.int64'>"),
        ({"labels": {1, 2}}, TypeError, "settings['labels']: a <class 'set'>"),
        ({"lr": float("nan")}, ValueError, "settings['lr']: nan"),
        ({"lr": [float("-inf")]}, ValueError, "settings['lr'][0]: -inf"),
        ({"table": {1: "a"}}, TypeError, "settings['table']: the key 1 is a int"),
        ({"s": {None: 1}}, TypeError, "settings['s']: the key None"),
        ([1, 2], TypeError, "settings must be a dict"),
    ],
)
def test_settings_that_are_not_json_name_the_setting(tmp_path, bad, error, where):
    def never(*args):
        raise AssertionError("built or trained with bad settings")

    for call in (
        lambda: checkpoints.settings_key(bad),
        lambda: checkpoints.checkpoint_path("tiny", bad),
        lambda: gm.train_or_load("tiny", bad, build=never, train=never),
    ):
        with pytest.raises(error) as info:
            call()
        assert str(info.value).startswith(where), str(info.value)
        if error is TypeError and "key" not in where and "dict" not in where:
            assert "is not JSON; use numbers, strings, bools, None, lists or dicts" in (
                str(info.value)
            )
    assert not list(tmp_path.glob("cache/**/*.pt"))


def test_settings_that_contain_themselves_are_refused():
    loop = {"a": []}
    loop["a"].append(loop["a"])
    with pytest.raises(ValueError, match=r"settings\['a'\]\[0\]: contains itself"):
        checkpoints.settings_key(loop)
    shared = [1, 2]  # the same list twice is fine: it is a tree of values
    assert checkpoints.settings_key({"a": shared, "b": shared}) == old_key(
        {"a": [1, 2], "b": [1, 2]}
    )


def test_tuples_are_stored_as_lists_and_load(tmp_path):
    as_tuple = {"hidden": (8, (2, 3)), "width": 4}
    as_list = {"hidden": [8, [2, 3]], "width": 4}
    assert checkpoints.settings_key(as_tuple) == checkpoints.settings_key(as_list)
    trainer = Trainer()
    gm.train_or_load("tiny", as_tuple, build=build, train=trainer, directory=tmp_path)
    gm.train_or_load("tiny", as_list, build=build, train=trainer, directory=tmp_path)
    assert trainer.calls == 1
    path = checkpoints.checkpoint_path("tiny", as_tuple, directory=tmp_path)
    assert torch.load(path, weights_only=True)["settings"] == as_list


# --- what is in the file must match ---------------------------------------------------


def payload(**changes):
    good = {
        "format": checkpoints.FORMAT,
        "name": "tiny",
        "settings": dict(SETTINGS),
        "state_dict": None,
        "history": Trainer()(build()).to_dict(),
    }
    model = build()
    Trainer(value=7.0)(model)
    good["state_dict"] = model.state_dict()
    good.update(changes)
    return good


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"name": "other"}, "holds 'other', not 'tiny'"),
        ({"format": checkpoints.FORMAT + 1}, "not a gmlib checkpoint of format"),
        ({"settings": {"num_epochs": 1.0, "width": 4}}, "other settings"),
        ({"settings": {"num_epochs": True, "width": 4}}, "other settings"),
        ({"settings": {"num_epochs": 1}}, "other settings"),
        ({"settings": None}, "other settings"),
        ({"state_dict": {"weight": torch.ones(4, 3)}}, "Missing key"),
        (
            {"state_dict": dict(build().state_dict(), extra=torch.ones(1))},
            "Unexpected key",
        ),
        ({"state_dict": {"weight": torch.ones(3, 4), "bias": torch.ones(4)}}, "size"),
        ({"state_dict": torch.ones(3)}, "state_dict is a Tensor"),
        ({"history": {"step_loss": []}}, "KeyError"),
    ],
)
def test_a_file_with_other_contents_is_reported_and_retrained(
    tmp_path, changes, message
):
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path)
    checkpoints.save_atomic(payload(**changes), path)
    trainer = Trainer()
    with pytest.warns(UserWarning, match="unusable") as record:
        model, _ = gm.train_or_load(
            "tiny", SETTINGS, build=build, train=trainer, directory=tmp_path
        )
    assert message in str(record[0].message)
    # a fresh model, trained: nothing of the file's weights (7.0) is left
    assert trainer.calls == 1 and torch.all(model.weight == 1.5)
    assert torch.all(model.bias == 1.5)
    gm.train_or_load("tiny", SETTINGS, build=build, train=trainer, directory=tmp_path)
    assert trainer.calls == 1  # the retrained file replaced it


def test_the_unchanged_payload_loads(tmp_path):
    """The control for the test above: the same file, unchanged, is used."""
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path)
    checkpoints.save_atomic(payload(), path)
    trainer = Trainer()
    model, _ = gm.train_or_load(
        "tiny", SETTINGS, build=build, train=trainer, directory=tmp_path
    )
    assert trainer.calls == 0 and torch.all(model.weight == 7.0)


# --- non-finite weights ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_never_cached(tmp_path, bad):
    def train(model):
        with torch.no_grad():
            model.weight.fill_(0.5)
            model.bias[1] = bad
        return Trainer()(nn.Linear(1, 1))

    with pytest.raises(FloatingPointError) as info:
        gm.train_or_load("tiny", SETTINGS, build=build, train=train, directory=tmp_path)
    message = str(info.value)
    assert "'tiny'" in message and "in 'bias'" in message and "'weight'" not in message
    assert "nothing was cached" in message and "learning rate" in message
    assert list(tmp_path.iterdir()) == []


def test_a_cached_checkpoint_with_non_finite_weights_is_retrained(tmp_path):
    model = build()
    Trainer(value=7.0)(model)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path)
    checkpoints.save_atomic(payload(state_dict=model.state_dict()), path)
    trainer = Trainer()
    with pytest.warns(UserWarning, match=r"unusable.*NaN or inf values in 'weight'"):
        model, _ = gm.train_or_load(
            "tiny", SETTINGS, build=build, train=trainer, directory=tmp_path
        )
    assert trainer.calls == 1 and torch.all(model.weight == 1.5)
    stored = torch.load(path, weights_only=True)["state_dict"]
    assert torch.all(stored["weight"] == 1.5)


# --- a folder that cannot take the checkpoint -----------------------------------------


def raise_oserror(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


FAULTS = {
    "folder under a file": None,
    "folder is a file": None,
    "ENOSPC in write": (os, "write", errno.ENOSPC),
    "ENOSPC in fsync": (os, "fsync", errno.ENOSPC),
    "ENOSPC in replace": (os, "replace", errno.ENOSPC),
    "EROFS in replace": (os, "replace", errno.EROFS),
    "EROFS in mkstemp": (tempfile, "mkstemp", errno.EROFS),
    "EACCES in mkstemp": (tempfile, "mkstemp", errno.EACCES),
    "EROFS in mkdir": (Path, "mkdir", errno.EROFS),
}


def not_cached_warnings(record):
    return [w for w in record if "could not cache" in str(w.message)]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_an_unwritable_folder_warns_once_and_returns_the_model(
    tmp_path, monkeypatch, fault
):
    folder = tmp_path / "ckpts"
    if fault == "folder under a file":
        (tmp_path / "file").write_text("")
        folder = tmp_path / "file" / "ckpts"
    elif fault == "folder is a file":
        folder.write_text("")
    else:
        module, attribute, code = FAULTS[fault]
        monkeypatch.setattr(module, attribute, raise_oserror(code))
    trainer = Trainer()
    for calls in (1, 2):  # not cached: the next run trains again, and says so again
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            model, history = gm.train_or_load(
                "tiny", SETTINGS, build=build, train=trainer, directory=folder
            )
        [warning] = record
        message = str(warning.message)
        assert warning.filename == __file__  # points at the caller's line
        assert message.startswith(f"could not cache 'tiny' in {folder} (")
        assert "the next run trains it again" in message and "directory=" in message
        assert ".part" not in message
        assert trainer.calls == calls and torch.all(model.weight == 1.5)
        assert history.step_loss == [2.0, 1.0] and not model.training
    monkeypatch.undo()
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "file"]
    assert leftovers == ([folder] if fault == "folder is a file" else [])


def test_an_unwritable_cache_says_to_set_gmlib_cache(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("GMLIB_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.warns(UserWarning, match="could not cache") as record:
        gm.train_or_load("tiny", SETTINGS, build=build, train=Trainer())
    [warning] = not_cached_warnings(record)
    assert "NotADirectoryError: Not a directory: " in str(warning.message)
    assert "set GMLIB_CACHE to a writable folder" in str(warning.message)


@pytest.mark.parametrize("call", ["write", "fsync", "replace"])
def test_a_failed_rewrite_keeps_the_old_checkpoint(tmp_path, monkeypatch, call):
    gm.train_or_load("tiny", SETTINGS, build=build, train=Trainer(), directory=tmp_path)
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path)
    old = path.read_bytes()
    monkeypatch.setattr(os, call, raise_oserror(errno.ENOSPC))
    with pytest.warns(UserWarning, match="No space left on device"):
        model, _ = gm.train_or_load(
            "tiny",
            SETTINGS,
            build=build,
            train=Trainer(value=3.0),
            directory=tmp_path,
            retrain=True,
        )
    monkeypatch.undo()
    assert torch.all(model.weight == 3.0)
    assert list(tmp_path.iterdir()) == [path] and path.read_bytes() == old


# --- temporary files of killed runs ---------------------------------------------------


def test_temporary_files_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path)
    dead = tmp_path / f".{path.name}.dead1234.part"
    live = tmp_path / f".{path.name}.live1234.part"
    other = tmp_path / ".other-0123456789ab.pt.dead1234.part"  # another target's
    for part in (dead, live, other):
        part.write_bytes(b"half a checkpoint")
    # another writer's lock: an open file description of its own, as in another
    # process
    fd = os.open(live, os.O_RDWR)
    try:
        assert checkpoints._try_lock(fd) is True
        trainer = Trainer()
        gm.train_or_load(
            "tiny", SETTINGS, build=build, train=trainer, directory=tmp_path
        )
        assert sorted(tmp_path.iterdir()) == sorted([path, live, other])
    finally:
        os.close(fd)  # the writer dies: its lock goes
    gm.train_or_load("tiny", SETTINGS, build=build, train=trainer, directory=tmp_path)
    assert trainer.calls == 1  # loading removes them too
    assert sorted(tmp_path.iterdir()) == sorted([path, other])


def test_without_locks_temporary_files_are_stale_by_age(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "fcntl", None)
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path)
    fresh = tmp_path / f".{path.name}.fresh123.part"
    old = tmp_path / f".{path.name}.old12345.part"
    for part in (fresh, old):
        part.write_bytes(b"half a checkpoint")
    long_ago = time.time() - checkpoints.STALE_SECONDS - 5
    os.utime(old, (long_ago, long_ago))
    gm.train_or_load("tiny", SETTINGS, build=build, train=Trainer(), directory=tmp_path)
    assert sorted(tmp_path.iterdir()) == sorted([path, fresh])


def test_a_writer_whose_new_file_was_taken_for_stale_claims_another(
    tmp_path, monkeypatch
):
    """A cleaner may remove a temporary file between its creation and its lock."""
    real_mkstemp, made = tempfile.mkstemp, []

    def mkstemp_then_cleaner(**kwargs):
        fd, name = real_mkstemp(**kwargs)
        made.append(name)
        if len(made) == 1:
            os.unlink(name)  # the cleaner came first
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_cleaner)
    trainer = Trainer()
    gm.train_or_load("tiny", SETTINGS, build=build, train=trainer, directory=tmp_path)
    monkeypatch.undo()
    path = checkpoints.checkpoint_path("tiny", SETTINGS, directory=tmp_path)
    assert len(made) == 2 and list(tmp_path.iterdir()) == [path]
    gm.train_or_load("tiny", SETTINGS, build=build, train=trainer, directory=tmp_path)
    assert trainer.calls == 1
