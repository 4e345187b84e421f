"""Train once, load afterwards: a checkpoint cache keyed by a name and the settings.

:func:`train_or_load` looks for ``<cache>/checkpoints/<name>-<hash of settings>.pt``. A
file that loads (with ``weights_only=True``, so a checkpoint can never run code) and
whose stored settings and weights fit is used; a corrupt or mismatched one is reported
and retrained. Every write goes to a temporary file in the same folder, is flushed to
disk and then renamed over the target, so a run killed mid-save leaves either the old
checkpoint or none, never half of one.
Taught in ``notebooks/00_introduction.ipynb``, section "Train or load".
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import runtime
from .data import cache_dir, publish
from .train import History

FORMAT = 1


def checkpoint_path(
    name: str, settings: dict[str, Any], *, directory: str | Path | None = None
) -> Path:
    """Where the checkpoint for ``name`` trained with ``settings`` lives."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(
            "checkpoint name must be non-empty letters, digits, '-', '_' or '.', "
            f"got {name!r}"
        )
    folder = Path(directory) if directory is not None else cache_dir() / "checkpoints"
    return folder / f"{name}-{settings_key(settings)}.pt"


def settings_key(settings: dict[str, Any]) -> str:
    """A short stable hash of the settings (JSON with sorted keys)."""
    try:
        text = json.dumps(settings, sort_keys=True, default=str)
    except TypeError as exc:
        raise TypeError(
            f"settings must be JSON-like (numbers, strings, lists, dicts): {exc}"
        ) from None
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename it over
    ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _try_load(
    path: Path, name: str, settings: dict[str, Any], model: nn.Module
) -> History | None:
    """The stored history if ``path`` holds a usable checkpoint (weights loaded into
    ``model``)."""
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError("not a gmlib checkpoint of format %d" % FORMAT)
        expected = json.loads(json.dumps(settings, sort_keys=True, default=str))
        if payload.get("name") != name or payload.get("settings") != expected:
            raise ValueError(
                f"it was trained with other settings: {payload.get('settings')}"
            )
        model.load_state_dict(payload["state_dict"])
        return History.from_dict(payload["history"])
    except Exception as exc:
        warnings.warn(
            f"checkpoint {path} is unusable ({type(exc).__name__}: {exc}); retraining",
            stacklevel=3,
        )
        return None


def train_or_load(
    name: str,
    settings: dict[str, Any],
    *,
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module], History],
    directory: str | Path | None = None,
    retrain: bool = False,
    verbose: bool = True,
) -> tuple[nn.Module, History]:
    """Return ``(model, history)``: loaded from the cache if a usable checkpoint exists,
    else ``model = build()`` trained by ``train(model)`` (which returns its History) and
    saved.

    The key is ``name`` plus ``settings`` (a notebook passes its budget's settings), so
    a change of any setting trains anew. ``retrain=True`` ignores the cache;
    ``verbose=False`` drops the "loaded ..." line (a problem with a file is always
    reported). Either way the model comes back on ``gm.device()`` in eval mode, so the
    code after it runs the same on a re-run.
    """
    path = checkpoint_path(name, settings, directory=directory)
    model = build()
    if not retrain:
        history = _try_load(path, name, settings, model)
        if history is not None:
            if verbose:
                print(f"loaded {name} from {path}")
            return model.to(runtime.device()).eval(), history
        model = build()  # a failed load may have filled some weights: start clean
    history = train(model)
    if not isinstance(history, History):
        raise TypeError(
            f"train(model) must return a gmlib History, got {type(history).__name__}"
        )
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_atomic(
        {
            "format": FORMAT,
            "name": name,
            "settings": json.loads(json.dumps(settings, sort_keys=True, default=str)),
            "state_dict": state,
            "history": history.to_dict(),
        },
        path,
    )
    return model.to(runtime.device()).eval(), history
