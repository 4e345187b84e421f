"""Where and how long code runs: the device, the run-length budget, and seeding.

Every notebook declares its settings for the three budgets side by side with
:func:`settings`; the environment variable ``GMLIB_BUDGET`` picks one of them.
See the setup cell of ``notebooks/00_introduction.ipynb``.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

BUDGETS = ("smoke", "cpu", "full")
BUDGET_HELP = {
    "smoke": "tests: every code path runs, within 60 s on a 2-core CPU",
    "cpu": "no GPU: recognizable results within 5 min on a 2-core CPU",
    "full": "a GPU: results close to the published ones within 10 min on a T4",
}
ACCEL_ON_CPU_ENV = "GMLIB_ACCEL_ON_CPU"


def device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU.

    ``GMLIB_DEVICE`` (e.g. ``cpu``) overrides the choice.
    """
    forced = os.environ.get("GMLIB_DEVICE", "").strip()
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def budget() -> str:
    """The run-length budget: ``$GMLIB_BUDGET`` if set, else ``full`` with a GPU, else
    ``cpu``."""
    value = os.environ.get("GMLIB_BUDGET", "").strip().lower()
    if not value:
        return "full" if device().type == "cuda" else "cpu"
    if value not in BUDGETS:
        raise ValueError(
            f"GMLIB_BUDGET={os.environ['GMLIB_BUDGET']!r} is not a budget; "
            "expected one of " + ", ".join(f"'{b}' ({BUDGET_HELP[b]})" for b in BUDGETS)
        )
    return value


def accelerated(dev: torch.device | str | None = None) -> bool:
    """Whether the accelerator path (bf16 autocast, channels_last) is used on ``dev``.

    It is on for CUDA. Setting ``GMLIB_ACCEL_ON_CPU=1`` turns it on for the CPU too, so
    that the tests exercise the same code a Colab GPU runs.
    """
    dev = torch.device(dev) if dev is not None else device()
    return dev.type == "cuda" or os.environ.get(ACCEL_ON_CPU_ENV, "") == "1"


class Settings:
    """A notebook's settings for the current budget, remembering all three for display.

    Read a value as an attribute (``cfg.num_epochs``); ``cfg.as_dict()`` gives the
    current values (used as part of a checkpoint's key); printing shows the three
    budgets side by side.
    """

    def __init__(self, table: dict[str, dict[str, Any]], current: str):
        self._table = table
        self._current = current
        self._values = dict(table[current])

    @property
    def budget(self) -> str:
        return self._current

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(
            f"no setting named {name!r}; settings are: {', '.join(values)}"
        )

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def _rows(self) -> list[list[str]]:
        rows = [["setting", *[f"{b} *" if b == self._current else b for b in BUDGETS]]]
        for key in self._values:
            rows.append([key, *[repr(self._table[b][key]) for b in BUDGETS]])
        return rows

    def __repr__(self) -> str:
        rows = self._rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows
        ]
        return "\n".join(lines) + f"\n(* = the budget in use: {self._current})"

    def _repr_html_(self) -> str:
        rows = self._rows()
        head = "".join(f"<th>{c}</th>" for c in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:]
        )
        return (
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"<p>* the budget in use: <b>{self._current}</b></p>"
        )


def settings(
    *,
    smoke: dict[str, Any],
    cpu: dict[str, Any],
    full: dict[str, Any],
    budget_name: str | None = None,
) -> Settings:
    """Declare a notebook's settings for every budget; returns those of the current one.

    The three dicts must have the same keys, so a reader can compare them line by line.
    """
    table = {"smoke": dict(smoke), "cpu": dict(cpu), "full": dict(full)}
    keys = list(table["smoke"])
    for name, values in table.items():
        if set(values) != set(keys):
            missing = sorted(set(keys) ^ set(values))
            raise ValueError(
                f"the {name!r} settings differ from 'smoke' in keys {missing}; "
                "every budget must set the same keys"
            )
    return Settings(table, budget_name if budget_name is not None else budget())


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); returns a CPU generator seeded
    alike."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def summary() -> str:
    """One line for a notebook's setup cell: versions, device, budget, threads."""
    dev = device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
    return (
        f"torch {torch.__version__} | device: {name} | budget: {budget()} "
        f"| accelerator path: {'on' if accelerated(dev) else 'off'} "
        f"| CPU threads: {torch.get_num_threads()}"
    )
