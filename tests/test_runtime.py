import random

import numpy as np
import pytest
import torch

import gmlib as gm
from gmlib import runtime


def test_device_is_cpu_here_and_can_be_forced(monkeypatch):
    expected = "cuda" if torch.cuda.is_available() else None
    dev = runtime.device()
    assert isinstance(dev, torch.device)
    if expected:
        assert dev.type == expected
    monkeypatch.setenv("GMLIB_DEVICE", "cpu")
    assert runtime.device() == torch.device("cpu")


@pytest.mark.parametrize("value", ["smoke", "cpu", "full", " SMOKE "])
def test_budget_reads_the_environment(monkeypatch, value):
    monkeypatch.setenv("GMLIB_BUDGET", value)
    assert runtime.budget() == value.strip().lower()


def test_budget_default_depends_on_the_device(monkeypatch):
    monkeypatch.delenv("GMLIB_BUDGET", raising=False)
    monkeypatch.setattr(runtime, "device", lambda: torch.device("cpu"))
    assert runtime.budget() == "cpu"
    monkeypatch.setattr(runtime, "device", lambda: torch.device("cuda"))
    assert runtime.budget() == "full"


def test_bad_budget_names_the_valid_choices(monkeypatch):
    monkeypatch.setenv("GMLIB_BUDGET", "nonsense")
    with pytest.raises(ValueError) as err:
        runtime.budget()
    message = str(err.value)
    assert "'nonsense'" in message
    for name in runtime.BUDGETS:
        assert f"'{name}'" in message


def test_settings_pick_the_budget_and_show_all_three(monkeypatch):
    monkeypatch.setenv("GMLIB_BUDGET", "cpu")
    cfg = gm.settings(
        smoke=dict(num_epochs=1, width=8),
        cpu=dict(num_epochs=5, width=32),
        full=dict(num_epochs=20, width=64),
    )
    assert (cfg.num_epochs, cfg.width, cfg.budget) == (5, 32, "cpu")
    assert cfg.as_dict() == {"num_epochs": 5, "width": 32}
    text = repr(cfg)
    assert "cpu *" in text and "smoke" in text and "full" in text
    assert text.splitlines()[1].split() == ["num_epochs", "1", "5", "20"]
    assert "<table>" in cfg._repr_html_()
    with pytest.raises(AttributeError, match="num_epochs"):
        cfg.nonexistent


def test_settings_must_have_the_same_keys():
    with pytest.raises(ValueError, match="same keys"):
        gm.settings(smoke=dict(a=1), cpu=dict(a=1, b=2), full=dict(a=1))


def test_seed_everything_makes_runs_repeatable():
    def draw():
        gm.seed_everything(123)
        return random.random(), np.random.rand(), torch.rand(3)

    first, second = draw(), draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])
    with pytest.raises(ValueError, match="non-negative int"):
        gm.seed_everything(-1)


def test_accelerated_flag(monkeypatch):
    assert runtime.accelerated("cuda")
    assert not runtime.accelerated("cpu")
    monkeypatch.setenv("GMLIB_ACCEL_ON_CPU", "1")
    assert runtime.accelerated("cpu")


def test_summary_mentions_device_and_budget(monkeypatch):
    monkeypatch.setenv("GMLIB_BUDGET", "smoke")
    line = runtime.summary()
    assert "budget: smoke" in line and "device:" in line
