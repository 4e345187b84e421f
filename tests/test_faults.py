"""Training runs killed at random points, many of them while they write their
checkpoint: the next ``train_or_load`` loads a complete checkpoint or trains again; it
never crashes, never loads a partial file, and removes the killed runs' temporary files.

Each run is a forked copy of this process (no second torch import), killed with
SIGKILL. It reports its progress through a pipe, one byte per event: ``s`` started,
``t`` a training step, ``w`` a write of the checkpoint file (slowed down, so that the
write takes a while), ``f`` the fsync, ``r`` the rename, ``d`` done. A seeded RNG picks
after which event, and how long after it, each run is killed.
"""

import os
import random
import shutil
import signal
import sys
import time
import traceback
import warnings

import pytest
import torch
from torch import nn

import gmlib as gm
from gmlib import checkpoints

pytestmark = pytest.mark.usefixtures("one_thread")

NAME = "killed"
SETTINGS = {"width": 768, "steps": 8, "batch_size": 16, "lr": 0.01, "seed": 0}
KILL_POINTS = 24
WRITE_PAUSE = 0.01  # seconds before and after each write of a chunk (1 MiB)
MAX_DELAY = 0.015  # the kill comes up to this long after the chosen event


def build() -> nn.Module:
    torch.manual_seed(SETTINGS["seed"])
    width = SETTINGS["width"]  # 2 x 768 x 768 weights: 4.7 MB, 5 writes
    return nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width))


def train(model: nn.Module, on_step=lambda: None) -> gm.History:
    """A few seeded SGD steps: the same weights in every process."""
    generator = torch.Generator().manual_seed(SETTINGS["seed"])
    optimizer = torch.optim.SGD(model.parameters(), lr=SETTINGS["lr"])
    losses = []
    for _ in range(SETTINGS["steps"]):
        x = torch.randn(SETTINGS["batch_size"], SETTINGS["width"], generator=generator)
        loss = (model(x) - x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        on_step()
    return gm.History(
        step_loss=losses,
        epochs={"loss": [losses[-1]]},
        num_images=len(losses) * SETTINGS["batch_size"],
    )


def run(directory, retrain: bool, events: int) -> None:
    """The training run, in the forked child: reports its events to the pipe."""
    real_write, real_fsync, real_replace = os.write, os.fsync, os.replace

    def event(code: bytes) -> None:
        real_write(events, code)

    def slow_write(fd, data):
        event(b"w")
        time.sleep(WRITE_PAUSE)
        written = real_write(fd, data)
        time.sleep(WRITE_PAUSE)
        return written

    def fsync(fd):
        event(b"f")
        real_fsync(fd)

    def replace(src, dst):
        event(b"r")
        real_replace(src, dst)

    os.write, os.fsync, os.replace = slow_write, fsync, replace
    event(b"s")
    gm.train_or_load(
        NAME,
        SETTINGS,
        build=build,
        train=lambda model: train(model, on_step=lambda: event(b"t")),
        directory=directory,
        retrain=retrain,
        verbose=False,
    )
    event(b"d")


def start(directory, *, retrain: bool = False) -> tuple[int, int]:
    """Fork a training run; returns its pid and the pipe's end to read its events."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            run(directory, retrain, write_end)
            status = 0
        except BaseException:
            traceback.print_exc(file=sys.stderr)
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def read_events(read_end: int, count: int | None = None) -> bytes:
    """``count`` events (all, up to the end, if None or if the run ends before)."""
    seen = b""
    while count is None or len(seen) < count:
        byte = os.read(read_end, 1)
        if not byte:
            break
        seen += byte
    return seen


def finish(pid: int) -> int:
    """Wait for the run; its exit status, or minus the signal that killed it."""
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def test_runs_killed_at_random_points_load_a_complete_checkpoint_or_retrain(tmp_path):
    began = time.perf_counter()
    reference = build()
    reference_history = train(reference)
    expected = reference.state_dict()

    # an uninterrupted run: the sequence of events, and a complete checkpoint
    complete = tmp_path / "complete"
    pid, read_end = start(complete)
    sequence = read_events(read_end)
    os.close(read_end)
    assert finish(pid) == 0
    steps = SETTINGS["steps"]
    assert sequence == b"s" + b"t" * steps + b"w" * 5 + b"frd", sequence
    target = checkpoints.checkpoint_path(NAME, SETTINGS, directory=complete)
    saved = torch.load(target, weights_only=True)["state_dict"]
    assert all(torch.equal(saved[k], v) for k, v in expected.items())
    assert list(complete.iterdir()) == [target]

    rng = random.Random(1128)
    writing = [i + 1 for i, e in enumerate(sequence) if e in b"wf"]
    outcomes = []
    for point in range(KILL_POINTS):
        directory = tmp_path / f"run{point}"
        directory.mkdir()
        path = directory / target.name
        had_checkpoint = rng.random() < 0.25  # the run retrains over an old file
        if had_checkpoint:
            shutil.copy(target, path)
        # half of the kills after a write event, the others anywhere in the run
        if point % 2:
            after = rng.choice(writing)
        else:
            after = rng.randrange(len(sequence) + 1)
        delay = rng.uniform(0, MAX_DELAY)

        pid, read_end = start(directory, retrain=had_checkpoint)
        read_events(read_end, after)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        status = finish(pid)
        reached = sequence[:after] + read_events(read_end)
        os.close(read_end)
        assert status in (0, -signal.SIGKILL), (point, status)

        parts = [p for p in directory.iterdir() if p.name.endswith(".part")]
        assert len(parts) <= 1, parts
        complete_file = path.exists()
        outcomes.append((point, after, reached[-1:], bool(parts), complete_file))

        calls = []
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            model, history = gm.train_or_load(
                NAME,
                SETTINGS,
                build=build,
                train=lambda m: calls.append(1) or train(m),
                directory=directory,
                verbose=False,
            )
        # a file at the target path is always complete: loaded, with no complaint
        assert [str(w.message) for w in record] == [], outcomes[-1]
        assert len(calls) == (0 if complete_file else 1), outcomes[-1]
        state = model.state_dict()
        assert all(torch.equal(state[k], v) for k, v in expected.items()), point
        assert history.step_loss == reference_history.step_loss
        assert list(directory.iterdir()) == [path]  # the temporary file is gone

    in_write = sum(part for *_, part, _ in outcomes)
    before_write = sum(not part and not done for *_, part, done in outcomes)
    with_file = sum(done for *_, done in outcomes)
    print(
        f"{KILL_POINTS} kills: {before_write} before the checkpoint write, {in_write} "
        f"inside it (a temporary file left), {with_file} with a complete checkpoint "
        f"at the path (written, or the old one kept); "
        f"{time.perf_counter() - began:.1f} s"
    )
    assert in_write >= KILL_POINTS // 3
    assert before_write >= 3 and with_file >= 3


def test_a_notebook_runs_with_a_cache_it_cannot_write(tmp_path, monkeypatch):
    """Chapter 00 at the smoke budget with ``GMLIB_CACHE`` under a regular file (a
    folder nothing can create, even as root): every cell runs, each model is trained
    and used, and the warning says it was not cached and how to fix it."""
    import nbformat
    from nbclient import NotebookClient
    from test_repeatability import NOTEBOOK_DIR, _fashion_mnist_folder

    data = tmp_path / "data"
    data.mkdir()
    (data / "fashion-mnist").symlink_to(_fashion_mnist_folder(monkeypatch))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = dict(
        os.environ,
        GMLIB_BUDGET="smoke",
        GMLIB_PROGRESS="0",
        GMLIB_CACHE=str(blocker / "cache"),
        GMLIB_DATA=str(data),
    )
    nb = nbformat.read(NOTEBOOK_DIR / "00_introduction.ipynb", as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute(env=env)  # raises CellExecutionError if any cell fails
    stderr = "".join(
        out.get("text", "")
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.get("name") == "stderr"
    )
    assert stderr.count("could not cache") >= 1, stderr
    assert "set GMLIB_CACHE to a writable folder" in stderr
