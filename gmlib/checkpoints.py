"""Train once, load afterwards: a checkpoint cache keyed by a name and the settings.

:func:`train_or_load` looks for ``<cache>/checkpoints/<name>-<hash of settings>.pt``. A
file that loads (with ``weights_only=True``, so a checkpoint can never run code) and
whose stored settings and weights fit is used; a corrupt or mismatched one is reported
and retrained. Every write goes to a temporary file in the same folder, is flushed to
disk and then renamed over the target, so a run killed mid-save leaves either the old
checkpoint or none, never half of one; the temporary files such runs leave are removed
by the next save or load. Settings must be plain JSON (see :func:`canonical_settings`),
so a key is the same on every run and machine. Weights with a NaN or an inf are never
cached, and a folder that cannot take the file costs a warning, not the run.
Taught in ``notebooks/00_introduction.ipynb``, section "Train or load".
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import json
import math
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import runtime
from .data import cache_dir, publish
from .train import History

try:
    import fcntl
except ImportError:  # Windows: a stale temporary file is told by its age alone
    fcntl = None

FORMAT = 1
CHUNK = 1 << 20  # bytes per write of a checkpoint file
STALE_SECONDS = 600  # a temporary file nobody locks or touches for this long is stale


def checkpoint_path(
    name: str, settings: dict[str, Any], *, directory: str | Path | None = None
) -> Path:
    """Where the checkpoint for ``name`` trained with ``settings`` lives."""
    return _path(name, canonical_settings(settings), directory)


def _path(name: str, settings_json: str, directory: str | Path | None) -> Path:
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(
            "checkpoint name must be non-empty letters, digits, '-', '_' or '.', "
            f"got {name!r}"
        )
    folder = Path(directory) if directory is not None else cache_dir() / "checkpoints"
    return folder / f"{name}-{_key(settings_json)}.pt"


def settings_key(settings: dict[str, Any]) -> str:
    """A short hash of the settings' canonical JSON (:func:`canonical_settings`): the
    same on every run and every machine."""
    return _key(canonical_settings(settings))


def _key(settings_json: str) -> str:
    return hashlib.sha256(settings_json.encode()).hexdigest()[:12]


def canonical_settings(settings: dict[str, Any]) -> str:
    """The settings as JSON text with sorted keys: what a checkpoint's key is hashed
    from, what the checkpoint stores and what a load compares.

    Settings must be JSON as they are: a dict with str keys of numbers (finite),
    strings, bools, None, lists, tuples (stored as lists) and such dicts. Anything else
    raises a TypeError or ValueError naming the setting, e.g. ``settings['act']``: an
    object's text may hold a memory address (a key that changes every run), NaN never
    equals a stored NaN, and JSON turns a key ``1`` into ``"1"``.
    """
    if not isinstance(settings, dict):
        raise TypeError(
            f"settings must be a dict of JSON values, got {type(settings).__name__}"
        )
    _check_json(settings, "settings", set())
    return json.dumps(settings, sort_keys=True, allow_nan=False)


def _check_json(value: Any, where: str, open_containers: set[int]) -> None:
    """Raise if ``value`` (found at ``where``) is not JSON as it is."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"{where}: {value!r} is not allowed (NaN never equals a stored NaN); "
                "use a finite number, a string or None"
            )
        return
    if not isinstance(value, (dict, list, tuple)):
        raise TypeError(
            f"{where}: a {type(value)} is not JSON; "
            "use numbers, strings, bools, None, lists or dicts"
        )
    if id(value) in open_containers:
        raise ValueError(f"{where}: contains itself; settings must be a tree")
    open_containers.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where}: the key {key!r} is a {type(key).__name__}, not a str "
                    f"(JSON would turn it into {json.dumps(str(key))}, the same as a "
                    "str key); use str keys"
                )
            _check_json(item, f"{where}[{key!r}]", open_containers)
    else:
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]", open_containers)
    open_containers.discard(id(value))


def _non_finite(state: dict[str, Any]) -> list[str]:
    """The names of the floating point tensors of ``state`` with a NaN or an inf."""
    return [
        key
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
        and (value.is_floating_point() or value.is_complex())
        and not bool(torch.isfinite(value).all())
    ]


def _some(names: list[str], most: int = 5) -> str:
    shown = ", ".join(map(repr, names[:most]))
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _try_lock(fd: int) -> bool | None:
    """Lock the open file ``fd`` for its writer: True if locked, False if another
    process holds the lock, None if the file system has no locks."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def _remove_stale_parts(path: Path) -> None:
    """Delete the temporary files of ``path`` that no live writer holds, as a killed
    run leaves them.

    A writer holds a lock on its temporary file until it is renamed, and the system
    drops the lock when the writer dies. Where files cannot be locked, a temporary
    file untouched for :data:`STALE_SECONDS` counts as stale. Nothing here raises.
    """
    try:
        parts = glob.glob(glob.escape(str(path.parent / f".{path.name}.")) + "*.part")
    except OSError:
        return
    for part in parts:
        try:
            fd = os.open(part, os.O_RDONLY)
        except OSError:
            continue
        try:
            lock = _try_lock(fd)
            age = time.time() - os.fstat(fd).st_mtime
            if lock or (lock is None and age > STALE_SECONDS):
                os.unlink(part)  # under the lock: no writer can claim it meanwhile
        except OSError:
            pass
        finally:
            os.close(fd)


def _claim_part(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path``, open and locked for writing."""
    for _ in range(5):
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".part"
        )
        try:
            # between mkstemp and the lock, a cleaner may have taken the file for stale
            mine = _try_lock(fd) is not False and os.path.samestat(
                os.fstat(fd), os.stat(tmp)
            )
        except FileNotFoundError:
            mine = False
        except BaseException:
            os.close(fd)
            raise
        if mine:
            return fd, tmp
        os.close(fd)
    raise OSError(f"could not claim a temporary file in {path.parent}")


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename it over
    ``path``.

    The object is serialized in memory first, so a failing ``torch.save`` creates no
    file, and a failing write raises the system's OSError (full disk, read-only file
    system, ...) with no temporary file left behind. Stale temporary files of ``path``
    from killed runs are removed.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(path)
    fd, tmp = _claim_part(path)
    try:
        try:
            view = memoryview(buffer.getbuffer())
            while view:
                view = view[os.write(fd, view[:CHUNK]) :]
            os.fsync(fd)
            publish(tmp, path)
        finally:
            os.close(fd)  # drops the lock
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _try_load(
    path: Path, name: str, settings_json: str, model: nn.Module
) -> History | None:
    """The stored history if ``path`` holds a usable checkpoint (weights loaded into
    ``model``)."""
    _remove_stale_parts(path)
    try:
        if not path.exists():
            return None
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError("not a gmlib checkpoint of format %d" % FORMAT)
        if payload.get("name") != name:
            raise ValueError(f"it holds {payload.get('name')!r}, not {name!r}")
        try:
            stored = canonical_settings(payload.get("settings"))
        except (TypeError, ValueError):
            stored = None
        if stored != settings_json:
            raise ValueError(
                f"it was trained with other settings: {payload.get('settings')}"
            )
        state = payload.get("state_dict")
        if not isinstance(state, dict):
            raise ValueError(f"its state_dict is a {type(state).__name__}, not a dict")
        bad = _non_finite(state)
        if bad:
            raise ValueError(f"its weights have NaN or inf values in {_some(bad)}")
        model.load_state_dict(state)
        return History.from_dict(payload["history"])
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if "Unsupported global" in str(exc):  # weights_only refused an object
            reason = (
                "it holds Python objects besides tensors and plain data, which "
                "unpickling could run as code; checkpoints load with weights_only=True"
            )
        warnings.warn(
            f"checkpoint {path} is unusable ({reason}); retraining", stacklevel=3
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

    Weights with a NaN or an inf are never cached: they raise a FloatingPointError
    (and such a checkpoint found in the cache is retrained). If the checkpoint cannot
    be written (read-only or full folder, ...), one warning says so and the trained
    model is returned all the same.
    """
    settings_json = canonical_settings(settings)
    path = _path(name, settings_json, directory)
    model = build()
    if not retrain:
        history = _try_load(path, name, settings_json, model)
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
    bad = _non_finite(state)
    if bad:
        raise FloatingPointError(
            f"training {name!r} left NaN or inf values in {_some(bad)}; "
            "nothing was cached. Try a lower learning rate or gradient clipping, and "
            "check the loss for log(0) or a division by 0"
        )
    try:
        save_atomic(
            {
                "format": FORMAT,
                "name": name,
                "settings": json.loads(settings_json),
                "state_dict": state,
                "history": history.to_dict(),
            },
            path,
        )
    except OSError as exc:
        warnings.warn(_not_cached(name, path, exc, directory is None), stacklevel=2)
    return model.to(runtime.device()).eval(), history


def _not_cached(name: str, path: Path, exc: OSError, default_folder: bool) -> str:
    """The warning for a checkpoint that could not be written."""
    reason = exc.strerror or str(exc)
    if exc.filename is not None and not str(exc.filename).endswith(".part"):
        reason += f": {exc.filename}"  # a temporary file's random name would not help
    folder = "a writable folder with free space"
    fix = (
        f"set GMLIB_CACHE to {folder}"
        if default_folder
        else f"pass {folder} as directory="
    )
    return (
        f"could not cache {name!r} in {path.parent} ({type(exc).__name__}: {reason}). "
        "The model is trained and returned, but not cached: the next run trains it "
        f"again. To keep checkpoints, {fix}"
    )
