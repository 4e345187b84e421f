r"""A small PixelRNN: an LSTM reads the image pixel by pixel in raster order.

At step $t$ the LSTM gets pixel $t-1$ (a start flag at $t = 0$) and where pixel $t$
sits (its row and column as fractions, so it need not count to know where a row ends);
a linear head turns its state into the logits of $p(x_t \mid x_{<t})$. The state can
remember the whole past, so there is no blind spot, but step $t$ needs step $t-1$: the
$H \cdot W$ steps run one after another in training too, where a PixelCNN computes all
pixels at once. (van den Oord et al. (2016a)'s Row LSTM and Diagonal BiLSTM are
cleverer about this; this one keeps the comparison simple.) Same interface as
``gmlib.pixelcnn``: levels in, logits ``(B, levels, H, W)`` out, ``log_prob``, the
losses, and ``gmlib.sampling`` (whose fast sampler carries the LSTM state, one pixel
per step). Taught in ``notebooks/02_pixelcnn.ipynb``.
"""

from __future__ import annotations

import torch
from torch import nn

from .autoregressive import AutoregressiveModel
from .checks import positive_int


def _positions(h: int, w: int, device: torch.device) -> torch.Tensor:
    """``(H * W, 2)``: the row and column of each raster step as fractions."""
    rows = torch.arange(h, device=device).repeat_interleave(w) / h
    cols = torch.arange(w, device=device).repeat(h) / w
    return torch.stack([rows, cols], dim=1)


class PixelRNN(AutoregressiveModel):
    """An LSTM over the raster sequence of pixels, with a linear head to ``levels``
    logits.

    ``num_layers`` stacked LSTM layers of ``hidden_size``; with ``num_classes``, a
    learned vector of the label is added to every step's input. Taught in
    ``notebooks/02_pixelcnn.ipynb``.
    """

    def __init__(
        self,
        *,
        levels: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        num_classes: int | None = None,
    ):
        super().__init__()
        self.levels = positive_int(levels, "levels", minimum=2)
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.num_layers = positive_int(num_layers, "num_layers")
        # step input: [pixel t-1, start flag, row of t, column of t]
        self.input = nn.Linear(4, hidden_size)
        self.lstm = nn.LSTM(hidden_size, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, levels)
        self._init_classes(num_classes, hidden_size)

    def _step_inputs(
        self,
        previous: torch.Tensor,
        start: torch.Tensor,
        positions: torch.Tensor,
        bias: torch.Tensor | None,
    ) -> torch.Tensor:
        """``(B, T)`` previous pixels and start flags, ``(T, 2)`` positions ->
        ``(B, T, hidden)``."""
        b, t = previous.shape
        features = torch.cat(
            [
                previous[..., None],
                start[..., None].expand(b, t, 1),
                positions.expand(b, t, 2),
            ],
            dim=2,
        )  # (B, T, 4)
        inputs = self.input(features.to(self.input.weight.dtype))
        return inputs if bias is None else inputs + bias[:, None]

    def _logits(self, e: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b, _, h, w = e.shape
        flat = e.flatten(1)  # (B, T), raster order
        previous = torch.cat([flat.new_zeros(b, 1), flat[:, :-1]], dim=1)  # shift by 1
        start = torch.zeros(h * w, device=e.device)
        start[0] = 1
        inputs = self._step_inputs(previous, start, _positions(h, w, e.device), bias)
        out, _ = self.lstm(inputs)  # (B, T, hidden): one step after another
        logits = self.head(out)  # (B, T, levels)
        return logits.transpose(1, 2).reshape(b, self.levels, h, w)

    def sampling_session(self, y: torch.Tensor | None) -> "_StateSession":
        return _StateSession(self, self.class_bias(y))


class _StateSession:
    """Sampling one LSTM step per pixel, carrying ``(h, c)``: the model's own
    sequential sampler (exactly the numbers of the full forward pass)."""

    def __init__(self, model: PixelRNN, bias: torch.Tensor | None):
        self.model, self.bias, self.state = model, bias, None

    def begin_row(self, e: torch.Tensor, i: int) -> None:
        pass

    def pixel_logits(self, e: torch.Tensor, i: int, j: int) -> torch.Tensor:
        b, _, h, w = e.shape
        t = i * w + j
        if t == 0:
            self.positions = _positions(h, w, e.device)
            self.state = None
            previous = e.new_zeros(b, 1)
        else:
            previous = e[:, 0, (t - 1) // w, (t - 1) % w][:, None]  # (B, 1)
        start = torch.full((1,), float(t == 0), device=e.device)
        inputs = self.model._step_inputs(
            previous, start, self.positions[t : t + 1], self.bias
        )  # (B, 1, hidden)
        out, self.state = self.model.lstm(inputs, self.state)
        return self.model.head(out[:, 0])  # (B, levels)
