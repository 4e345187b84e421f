"""Figures: image grids, training curves, and a slider that needs no kernel.

:func:`static_slider` precomputes frames as PNGs and puts them behind an HTML range
input with a few lines of inline JavaScript, so the same output works in Jupyter, Colab
and the static book.
Taught in ``notebooks/00_introduction.ipynb``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import uuid
from collections.abc import Mapping
from typing import Sequence

import matplotlib.pyplot as plt
import torch
import torchvision.utils as vutils

from .checks import describe, finite_number, positive_int


def _as_float_images(images: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` or ``(N, H, W)`` uint8/float to ``(N, C, H, W)`` float in
    [0, 1]; float values outside [0, 1] are clipped to it (NaN is an error)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    x = images.detach().cpu()
    if x.ndim == 3:
        x = x[:, None]  # (N, 1, H, W)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"images must be (N, C, H, W) with C in (1, 3), or (N, H, W); "
            f"got shape {tuple(images.shape)}"
        )
    if len(x) == 0:
        raise ValueError(
            f"images is an empty batch (shape {tuple(images.shape)}): nothing to show"
        )
    if x.dtype == torch.uint8:
        return x.float() / 255
    if not x.is_floating_point():
        raise TypeError(f"images must be uint8 or float, got {x.dtype}")
    if bool(torch.isnan(x).any()):
        raise ValueError(
            f"images hold {int(torch.isnan(x).sum())} NaN values: expected float "
            "values in [0, 1]"
        )
    return x.float().clamp(0, 1)


def image_grid(
    images: torch.Tensor, *, nrow: int = 8, padding: int = 2
) -> torch.Tensor:
    """A ``(3, H', W')`` grid of ``images``, float in [0, 1], ``nrow`` per row with
    ``padding`` white pixels between them.

    Made by torchvision's make_grid.
    """
    nrow = positive_int(nrow, "nrow")
    padding = positive_int(padding, "padding", minimum=0)
    return vutils.make_grid(
        _as_float_images(images), nrow=nrow, padding=padding, pad_value=1.0
    )


def show_images(
    images: torch.Tensor,
    *,
    nrow: int = 8,
    title: str | None = None,
    ax: plt.Axes | None = None,
    scale: float = 0.5,
    padding: int = 2,
) -> plt.Figure:
    """Plot ``images`` as a grid (``padding`` white pixels between them); ``title`` is
    the caption. Returns the figure."""
    scale = finite_number(scale, "scale", minimum=0, strict=True)
    if ax is not None and not isinstance(ax, plt.Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {describe(ax)}")
    grid = image_grid(images, nrow=nrow, padding=padding)  # (3, H', W')
    if ax is None:
        h, w = grid.shape[1:]
        fig, ax = plt.subplots(
            figsize=(max(2.0, scale * w / 30), max(2.0, scale * h / 30))
        )
    else:
        fig = ax.figure
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")  # (H', W', 3)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def plot_curves(
    curves: dict[str, Sequence[float]],
    *,
    xlabel: str = "step",
    ylabel: str = "loss",
    title: str | None = None,
    ax: plt.Axes | None = None,
    logy: bool = False,
) -> plt.Figure:
    """Plot named curves (e.g. ``{"train": history.step_loss}``) with labelled axes."""
    if not isinstance(curves, Mapping):
        raise TypeError(
            "curves must be a dict of name -> values, e.g. "
            f"{{'train': history.step_loss}}, got {describe(curves)}"
        )
    for label, values in curves.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise TypeError(
                f"curves[{label!r}] must be a sequence of numbers, got "
                f"{describe(values)}"
            )
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), list(values), label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _png_data_uri(frame, nrow: int = 8) -> str:
    """A data: URI of a matplotlib Figure, or of an image / batch of images (a grid of
    ``nrow`` per row)."""
    if not isinstance(frame, (plt.Figure, torch.Tensor)):
        raise TypeError(
            "each frame must be a matplotlib Figure or an image tensor (C, H, W) or "
            f"(N, C, H, W), got {describe(frame)}"
        )
    buf = io.BytesIO()
    if isinstance(frame, plt.Figure):
        frame.savefig(buf, format="png", dpi=frame.dpi, bbox_inches="tight")
        plt.close(frame)
    else:
        x = frame if frame.ndim == 4 else frame[None]  # (N, C, H, W)
        vutils.save_image(image_grid(x, nrow=min(len(x), nrow)), buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class StaticSlider:
    """Precomputed frames behind an HTML range input.

    It displays in any notebook or web page.
    """

    def __init__(
        self,
        frames: Sequence,
        *,
        labels: Sequence[str] | None = None,
        title: str = "",
        width: int | None = None,
        start: int = 0,
        nrow: int = 8,
    ):
        if isinstance(frames, (str, bytes)) or not hasattr(frames, "__iter__"):
            raise TypeError(
                f"frames must be a sequence of frames, got {describe(frames)}"
            )
        if isinstance(labels, (str, bytes)):
            raise TypeError(f"labels must be a sequence of strings, got {labels!r}")
        frames = list(frames)
        nrow = positive_int(nrow, "nrow")
        if width is not None:
            width = positive_int(width, "width")
        if not frames:
            raise ValueError("static_slider needs at least one frame")
        labels = (
            [str(i) for i in range(len(frames))]
            if labels is None
            else [str(label) for label in labels]
        )
        if len(labels) != len(frames):
            raise ValueError(f"got {len(frames)} frames but {len(labels)} labels")
        if (
            isinstance(start, bool)
            or not isinstance(start, int)
            or not 0 <= start < len(frames)
        ):
            raise ValueError(
                f"start must be an int in 0..{len(frames) - 1}, got {start!r}"
            )
        self.title, self.labels, self.start = title, labels, start
        self.sources = [_png_data_uri(f, nrow) for f in frames]
        self.width = width
        self.id = f"gm-slider-{uuid.uuid4().hex[:10]}"

    def __repr__(self) -> str:
        # no memory address: a notebook's text output stays the same from run to run
        title = f" {self.title!r}" if self.title else ""
        return (
            f"<StaticSlider{title}: {len(self.sources)} frames, "
            f"{self.labels[0]!r} to {self.labels[-1]!r}>"
        )

    @property
    def html(self) -> str:
        data = html.escape(
            json.dumps({"src": self.sources, "labels": self.labels}), quote=False
        )
        style = f"width:{self.width}px;" if self.width else "max-width:100%;"
        # The handler reads the frames from the JSON block beside it, once, and swaps
        # the image.
        handler = (
            "var d=this.closest('.gm-slider');"
            "d._f=d._f||JSON.parse(d.querySelector('.gm-frames').textContent);"
            "d.querySelector('img').src=d._f.src[this.value];"
            "d.querySelector('output').textContent=d._f.labels[this.value];"
        )
        title = html.escape(self.title)
        return (
            f'<div class="gm-slider" id="{self.id}">'
            + (f'<div class="gm-slider-title"><b>{title}</b></div>' if title else "")
            + f'<img src="{self.sources[self.start]}" alt="{title or "slider frame"}" '
            f'style="{style}image-rendering:pixelated;display:block;">'
            f"<label>{title or 'frame'}: "
            f'<input type="range" min="0" max="{len(self.sources) - 1}" '
            f'step="1" value="{self.start}" oninput="{html.escape(handler)}" '
            f'aria-label="{title or "frame"}"> '
            f"<output>{html.escape(self.labels[self.start])}</output></label>"
            f'<script type="application/json" class="gm-frames">{data}</script>'
            "</div>"
        )

    def _repr_html_(self) -> str:
        return self.html

    def save(self, path) -> None:
        """Write a standalone HTML page holding the slider."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(
                "<!doctype html><meta charset='utf-8'>"
                f"<title>{html.escape(self.title)}</title>{self.html}"
            )


def static_slider(
    frames: Sequence,
    *,
    labels: Sequence[str] | None = None,
    title: str = "",
    width: int | None = None,
    start: int = 0,
    nrow: int = 8,
) -> StaticSlider:
    """A kernel-free slider over precomputed ``frames``.

    Each frame is a matplotlib Figure (closed after rendering), an image ``(C, H, W)``,
    or a batch ``(N, C, H, W)`` shown as a grid of ``nrow`` images per row. ``labels``
    are shown beside the slider.
    """
    return StaticSlider(
        frames, labels=labels, title=title, width=width, start=start, nrow=nrow
    )
