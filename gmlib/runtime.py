"""Where and how long code runs: the device, the run-length budget, and seeding.

Every notebook declares its settings for the three budgets side by side with
:func:`settings`; the environment variable ``GMLIB_BUDGET`` picks one of them.
See the setup cell of ``notebooks/00_introduction.ipynb``.
"""

from __future__ import annotations

import html
import os
import random
from collections.abc import Mapping
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

    ``GMLIB_DEVICE`` (``cpu``, ``cuda``, ``cuda:1`` or ``mps``) overrides the choice;
    naming a device this machine lacks is a ValueError.
    """
    forced = os.environ.get("GMLIB_DEVICE", "").strip()
    if forced:
        return _forced_device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _forced_device(value: str) -> torch.device:
    """The device ``GMLIB_DEVICE=value`` names, if this machine has it."""
    setting = f"GMLIB_DEVICE={value!r}"
    try:
        dev = torch.device(value.lower())
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(
            f"{setting} is not a device gmlib runs on; expected 'cpu', 'cuda', "
            "'cuda:<index>' or 'mps' (or leave it unset to pick the best one)"
        )
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"{setting}, but this machine has no CUDA GPU that PyTorch can use "
                "(torch.cuda.is_available() is False); set GMLIB_DEVICE=cpu or unset it"
            )
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"{setting}, but this machine has {count} CUDA GPU(s): "
                f"indices 0..{count - 1}"
            )
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"{setting}, but Apple's MPS is not available here; "
                "set GMLIB_DEVICE=cpu or unset it"
            )
    return dev


def check_budget(name: object) -> str:
    """``name`` if it is one of :data:`BUDGETS`; else a ValueError listing them."""
    if not isinstance(name, str) or name not in BUDGETS:
        raise ValueError(
            f"unknown budget {name!r}; expected one of {', '.join(BUDGETS)}"
        )
    return name


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
    if dev is None:
        dev = device()
    else:
        try:
            dev = torch.device(dev)
        except (RuntimeError, TypeError):
            raise ValueError(
                "dev must be a torch.device or a device name such as 'cpu' or 'cuda', "
                f"got {dev!r}"
            ) from None
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
        if name not in self._values:
            raise KeyError(
                f"no setting named {name!r}; settings are: {', '.join(self._values)}"
            )
        return self._values[name]

    def _rows(self) -> list[list[str]]:
        rows = [["setting", *[f"{b} *" if b == self._current else b for b in BUDGETS]]]
        for key in self._values:
            cells = [repr(self._table[b][key]) for b in BUDGETS]
            cells = [" ".join(c.split()) if "\n" in c else c for c in cells]
            rows.append([str(key), *cells])  # one line each, e.g. for an array
        return rows

    def __repr__(self) -> str:
        rows = self._rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [  # three spaces: wider than the gaps inside "(16, 32)"
            "   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows
        ]
        return "\n".join(lines) + f"\n(* = the budget in use: {self._current})"

    def _repr_html_(self) -> str:
        # Inline styles: themes that zero a cell's padding (the book's does) would
        # otherwise run "(16, 32)" into the next column's value. A long tuple wraps
        # inside its cell rather than run past the page's content column.
        cell = "padding:0.15em 1em 0.15em 0;text-align:left;vertical-align:top;"
        rows = [[html.escape(c) for c in r] for r in self._rows()]
        head = "".join(
            f'<th style="{cell}border-bottom:1px solid #999;">{c}</th>' for c in rows[0]
        )
        body = "".join(
            "<tr>" + "".join(f'<td style="{cell}">{c}</td>' for c in r) + "</tr>"
            for r in rows[1:]
        )
        return (  # the box keeps the table at the left, as the note below it
            '<div style="display:inline-block;">'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
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
    given = {"smoke": smoke, "cpu": cpu, "full": full}
    for name, values in given.items():
        if not isinstance(values, Mapping):
            raise TypeError(
                f"{name} must be a dict of settings, e.g. dict(num_epochs=1), got "
                f"{type(values).__name__}"
            )
    if budget_name is not None:
        check_budget(budget_name)
    table = {name: dict(values) for name, values in given.items()}
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
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be a non-negative int below 2**64, got {seed!r}")
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
