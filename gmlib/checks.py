"""Argument checks shared by gmlib's modules, so every one words its errors alike."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn


def positive_int(value, name: str, *, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum`` (not a bool); else a ValueError naming
    ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def odd_size(value, name: str) -> int:
    """``value`` if it is an odd int >= 1 (a kernel size with a centre tap)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < 1
        or not value % 2
    ):
        raise ValueError(f"{name} must be an odd positive int, got {value!r}")
    return value


def positive_ints(values, name: str) -> tuple[int, ...]:
    """``values`` as a tuple if it is a tuple or list of ints >= 1 (maybe empty)."""
    if not isinstance(values, (tuple, list)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise ValueError(f"{name} must be positive ints, got {values!r}")
    return tuple(values)


def one_of(value, name: str, options: tuple) -> str:
    """``value`` if it is one of ``options``; else a ValueError listing them."""
    if not isinstance(value, str) or value not in options:
        expected = ", ".join(map(repr, options))
        raise ValueError(f"{name} must be one of {expected}, got {value!r}")
    return value


def image_shape(value, name: str = "image_shape") -> tuple[int, int, int]:
    """``value`` as ``(C, H, W)``: three ints >= 1."""
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or min(value) < 1
    ):
        raise ValueError(f"{name} must be (C, H, W), three ints >= 1, got {value!r}")
    return tuple(value)


def finite_number(
    value,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool = False,
) -> float:
    """``value`` as a float if it is a finite int or float (not a bool) in range:
    ``>= minimum`` (``> minimum`` if ``strict``) and ``<= maximum``."""
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (minimum is None or value > minimum or (value == minimum and not strict))
        and (maximum is None or value <= maximum)
    )
    if ok:
        return float(value)
    if minimum is not None and maximum is not None:
        expected = f"lie in [{minimum:g}, {maximum:g}]"
    elif minimum is not None:
        expected = (
            f"be > {minimum:g}" if strict else f"be a finite number >= {minimum:g}"
        )
    elif maximum is not None:
        expected = f"be a finite number <= {maximum:g}"
    else:
        expected = "be a finite number"
    raise ValueError(f"{name} must {expected}, got {value!r}")


def describe(x) -> str:
    """What ``x`` is, for a message: a tensor's dtype and shape, else its type."""
    if isinstance(x, torch.Tensor):
        return f"dtype {x.dtype}, shape {tuple(x.shape)}"
    return type(x).__name__


def float_tensor(x, name: str) -> torch.Tensor:
    """``x`` if it is a floating-point tensor; else a TypeError naming ``name``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {describe(x)}")
    return x


def is_integer_tensor(x) -> bool:
    """A tensor of integers (not bool, float or complex)."""
    return (
        isinstance(x, torch.Tensor)
        and not x.is_floating_point()
        and not x.is_complex()
        and x.dtype != torch.bool
    )


def labels(
    y, name: str = "y", *, batch: int | None = None, num_classes: int | None = None
) -> torch.Tensor:
    """``y`` if it is an integer tensor ``(B,)``, ``B = batch`` if given, with values
    in ``0..num_classes-1`` if given (that check reads the values: not for every
    training step on an accelerator)."""
    if not is_integer_tensor(y) or y.ndim != 1:
        raise TypeError(
            f"{name} must be integer labels of shape (B,), got {describe(y)}"
        )
    if batch is not None and len(y) != batch:
        raise ValueError(f"got {len(y)} labels for {batch} images")
    if num_classes is not None and len(y):
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"unknown class label: {name} must be in 0..{num_classes - 1}, "
                f"got values in {lo}..{hi}"
            )
    return y


def within(x: torch.Tensor, name: str, low: float, high: float) -> torch.Tensor:
    """``x`` if every value lies in ``[low, high]`` (NaN does not); reads the values,
    so for entry points, not for every training step."""
    if x.numel():
        lo, hi = float(x.min()), float(x.max())  # NaN if any value is NaN
        if not (low <= lo and hi <= high):
            raise ValueError(
                f"{name} must lie in [{low:g}, {high:g}], got values from {lo:.4g} "
                f"to {hi:.4g}"
            )
    return x


# --- arguments of the training loops ------------------------------------------------


def learning_rate(value, name: str = "lr") -> float:
    """``value`` as a float if it is a finite real number > 0 (numpy scalars too)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a finite number > 0, got {type(value).__name__} {value!r}"
        )
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def seed(value, name: str = "seed") -> int | None:
    """``value`` as an int if it is an integer in [0, 2**64) (numpy ints too), or
    None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an int or None, got {type(value).__name__} {value!r}"
        )
    if not 0 <= value < 2**64:
        raise ValueError(f"{name} must be an int in [0, 2**64) or None, got {value!r}")
    return int(value)


def non_negative_int(value, name: str) -> int:
    """``value`` if it is an int >= 0 (not a bool)."""
    return positive_int(value, name, minimum=0)


def function(value, name: str, *, optional: bool = True) -> None:
    """Nothing if ``value`` is callable (or None, when ``optional``)."""
    if not (callable(value) or (optional and value is None)):
        raise TypeError(
            f"{name} must be callable{' or None' if optional else ''}, "
            f"got {type(value).__name__}"
        )


def module(value, name: str) -> None:
    """Nothing if ``value`` is a ``torch.nn.Module``."""
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(value).__name__}")
