r"""PixelCNNs: masked convolutions compute every conditional of $p(x)$ in one pass.

An autoregressive model needs, for each pixel, $p(x_{ij} \mid$ the pixels before it in
raster order$)$. A convolution whose kernel is multiplied by a *mask* that hides the
pixel itself and everything after it gives all $H \cdot W$ of them at once, so training
is parallel over pixels (sampling is not: see ``gmlib.sampling``).

* :class:`PixelCNN`: van den Oord et al. (2016a), a type-A masked convolution and
  type-B residual blocks. Stacked 3x3 masks never see the pixels up and to the right of
  a growing wedge: the *blind spot*.
* :class:`GatedPixelCNN`: van den Oord et al. (2016b). A vertical stack (rows above)
  and a horizontal stack (the current row, to the left) together see every earlier
  pixel; gated units $\tanh(W_f * x) \odot \sigma(W_g * x)$; optional class labels;
  optionally PixelCNN++'s discretized logistic mixture head (``gmlib.logistic``).

Levels, the shared model interface and the losses live in ``gmlib.autoregressive`` and
are re-exported here (``quantize``, ``nll``, ``pixelcnn_loss``, ...). Taught in
``notebooks/02_pixelcnn.ipynb``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import logistic
from .autoregressive import (
    AutoregressiveModel,
    bits_per_dim,
    dequantize,
    embed_levels,
    model_bits_per_dim,
    nll,
    pixelcnn_loss,
    quantize,
)
from .checks import describe, odd_size, one_of, positive_int

__all__ = [
    "HEADS",
    "causal_mask",
    "MaskedConv2d",
    "PixelCNN",
    "GatedPixelCNN",
    "AutoregressiveModel",
    "quantize",
    "dequantize",
    "embed_levels",
    "nll",
    "bits_per_dim",
    "model_bits_per_dim",
    "pixelcnn_loss",
]

HEADS = ("categorical", "logistic")


# --- masks and masked convolutions ----------------------------------------------------


def causal_mask(kernel_size: int, mask_type: str) -> torch.Tensor:
    """The ``(k, k)`` mask of a PixelCNN convolution: 1 for the taps it may use.

    All rows above the centre, and in the centre row the taps left of the centre; type
    ``"B"`` adds the centre itself, type ``"A"`` (the first layer, which must not see
    the pixel it predicts) does not.
    """
    k = odd_size(kernel_size, "kernel_size")
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    c = k // 2
    mask = torch.zeros(k, k)
    mask[:c] = 1  # rows above
    mask[c, : c + (mask_type == "B")] = 1  # left of the centre (and the centre for B)
    return mask


class MaskedConv2d(nn.Conv2d):
    """A convolution whose weight is multiplied by a fixed 0/1 mask at every call.

    Give ``mask_type`` (``"A"`` or ``"B"``, see :func:`causal_mask`) or an explicit
    ``mask`` of shape ``(kh, kw)``, e.g. for the vertical and horizontal stacks. Padding
    is ``(kh // 2, kw // 2)``, so the output has the input's height and width.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        mask_type: str | None = None,
        mask: torch.Tensor | None = None,
    ):
        positive_int(in_channels, "in_channels")
        positive_int(out_channels, "out_channels")
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        if not isinstance(kernel_size, (tuple, list)) or len(kernel_size) != 2:
            raise ValueError(
                f"kernel_size must be an int or (kh, kw), got {kernel_size!r}"
            )
        kh = odd_size(kernel_size[0], "kernel height")
        kw = odd_size(kernel_size[1], "kernel width")
        super().__init__(
            in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2)
        )
        if (mask_type is None) == (mask is None):
            raise ValueError(
                "give exactly one of mask_type ('A' or 'B') or mask (a (kh, kw) tensor)"
            )
        if mask_type is not None:
            if kh != kw:
                raise ValueError(f"mask_type needs a square kernel, got {(kh, kw)}")
            mask = causal_mask(kh, mask_type)
        elif not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (kh, kw):
            raise ValueError(
                f"mask must be a tensor of shape {(kh, kw)}, got {describe(mask)}"
            )
        self.mask_type = mask_type
        self.register_buffer("mask", mask.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"expected a float tensor (B, C, H, W), got {describe(x)}")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        return self._conv_forward(x, self.weight * self.mask, self.bias)


def _precise(t: torch.Tensor) -> torch.Tensor:
    """``t`` in at least float32: half precision (bf16 autocast) is raised, float64
    kept."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _gate(t: torch.Tensor) -> torch.Tensor:
    r"""$\tanh(a) \odot \sigma(b)$ for the two halves $a, b$ of the channels."""
    a, b = t.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


# --- the models -----------------------------------------------------------------------


def _head(channels: int, out: int) -> nn.Sequential:
    """ReLU, 1x1 convolution, ReLU, 1x1 convolution to ``out`` maps: per-pixel, so
    causal."""
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(channels, channels, 1),
        nn.ReLU(),
        nn.Conv2d(channels, out, 1),
    )


class PixelCNN(AutoregressiveModel):
    """The PixelCNN of van den Oord et al. (2016a), with its blind spot.

    A type-A ``first_kernel_size`` masked convolution, then ``num_layers - 1``
    residual blocks ``h + conv_B(relu(h))`` with type-B ``kernel_size`` masks, then a
    per-pixel head to ``levels`` logits. With ``num_classes``, a learned vector of the
    label is added after every layer. Taught in ``notebooks/02_pixelcnn.ipynb``.
    """

    def __init__(
        self,
        *,
        levels: int,
        channels: int = 64,
        num_layers: int = 7,
        first_kernel_size: int = 7,
        kernel_size: int = 3,
        num_classes: int | None = None,
    ):
        super().__init__()
        self.levels = positive_int(levels, "levels", minimum=2)
        self.channels = positive_int(channels, "channels")
        self.num_layers = positive_int(num_layers, "num_layers")
        k0 = odd_size(first_kernel_size, "first_kernel_size")
        k = odd_size(kernel_size, "kernel_size")
        self.first = MaskedConv2d(1, channels, k0, mask_type="A")
        self.blocks = nn.ModuleList(
            MaskedConv2d(channels, channels, k, mask_type="B")
            for _ in range(num_layers - 1)
        )
        self.head = _head(channels, levels)
        self._init_classes(num_classes, num_layers * channels)
        # rows above (i, j) that reach its logits: the crop a sampler needs
        self.context_rows = k0 // 2 + (num_layers - 1) * (k // 2)

    def _logits(self, e: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if bias is not None:
            bias = bias.view(len(bias), self.num_layers, self.channels, 1, 1)
        h = self.first(e)  # (B, C, H, W)
        for n, block in enumerate([None, *self.blocks]):
            if block is not None:
                h = h + block(F.relu(h))
            if bias is not None:
                h = h + bias[:, n]
        return self.head(h)  # (B, levels, H, W)

    def sampling_session(self, y: torch.Tensor | None) -> "_RowCropSession":
        return _RowCropSession(self, self.class_bias(y))


class _RowCropSession:
    """Fast exact sampling without separate stacks: the model on the crop that reaches
    pixel ``(i, j)``, ``context_rows`` rows up and as many columns to either side (the
    crop's zero padding reaches only pixels farther out). Far fewer pixels than the
    whole image, but still every layer per pixel."""

    def __init__(self, model: PixelCNN, bias: torch.Tensor | None):
        self.model, self.bias = model, bias

    def begin_row(self, e: torch.Tensor, i: int) -> None:
        self.top = max(0, i - self.model.context_rows)

    def pixel_logits(self, e: torch.Tensor, i: int, j: int) -> torch.Tensor:
        reach = self.model.context_rows
        left, right = max(0, j - reach), j + reach + 1
        crop = e[
            :, :, self.top : i + 1, left:right
        ]  # (B, 1, <= reach + 1, <= 2 reach + 1)
        return self.model._logits(crop, self.bias)[:, :, -1, j - left]  # (B, levels)


class GatedPixelCNN(AutoregressiveModel):
    r"""The gated PixelCNN of van den Oord et al. (2016b): no blind spot.

    Each of the ``num_layers`` layers has a vertical stack, whose features at row $i$
    depend on the rows above $i$ only, and a horizontal stack, whose features at
    $(i, j)$ depend on the pixels left of $j$ in row $i$ and on the vertical features
    of row $i$ (through a 1x1 "link"). Both use gated units
    $\tanh(W_f * x + V_f \mathbf{h}) \odot \sigma(W_g * x + V_g \mathbf{h})$, where
    $V \mathbf{h}$ is a learned vector per class label (``num_classes``); the
    horizontal stack has residual connections. Masks:

    * vertical (``k x k``), first layer: the ``k // 2`` rows strictly above; later
      layers: those rows and the current one (whose vertical features still only saw
      rows above);
    * horizontal (``1 x k``), first layer: strictly left (type A); later: left and the
      centre (type B).

    ``k`` is ``first_kernel_size`` in the first layer (it reads one channel, so a wide
    kernel is cheap) and ``kernel_size`` after it.

    ``head="logistic"`` replaces the ``levels``-way softmax by PixelCNN++'s mixture of
    ``mixtures`` discretized logistics (``gmlib.logistic``); ``forward`` then returns
    the log-probability of every level as the logits. Taught in
    ``notebooks/02_pixelcnn.ipynb``.
    """

    def __init__(
        self,
        *,
        levels: int,
        channels: int = 64,
        num_layers: int = 8,
        first_kernel_size: int = 7,
        kernel_size: int = 3,
        num_classes: int | None = None,
        head: str = "categorical",
        mixtures: int = 5,
    ):
        super().__init__()
        self.levels = positive_int(levels, "levels", minimum=2)
        self.channels = c = positive_int(channels, "channels")
        self.num_layers = positive_int(num_layers, "num_layers")
        k0 = odd_size(first_kernel_size, "first_kernel_size")
        k = odd_size(kernel_size, "kernel_size")
        one_of(head, "head", HEADS)
        self.head_kind = head
        self.mixtures = positive_int(mixtures, "mixtures")
        self.vertical = nn.ModuleList()
        self.horizontal = nn.ModuleList()
        self.links = nn.ModuleList()  # vertical -> horizontal, 1x1
        self.outs = nn.ModuleList()  # gated horizontal features -> residual, 1x1
        for n in range(num_layers):
            first = n == 0
            size = k0 if first else k
            v_mask = torch.zeros(size, size)
            v_mask[: size // 2 + (not first)] = 1  # rows above (and current, later)
            h_mask = torch.zeros(1, size)
            h_mask[0, : size // 2 + (not first)] = 1  # left (and centre, later)
            c_in = 1 if first else c
            self.vertical.append(MaskedConv2d(c_in, 2 * c, size, mask=v_mask))
            self.horizontal.append(MaskedConv2d(c_in, 2 * c, (1, size), mask=h_mask))
            self.links.append(nn.Conv2d(2 * c, 2 * c, 1))
            self.outs.append(nn.Conv2d(c, c, 1))
        out = levels if head == "categorical" else 3 * mixtures
        self.head = _head(c, out)
        self._init_classes(num_classes, num_layers * 4 * c)  # vertical + horizontal
        # how far up (rows) and left (columns) the logits at (i, j) can look
        self.context_rows = self.context_cols = k0 // 2 + (num_layers - 1) * (k // 2)

    def _split_bias(self, bias: torch.Tensor | None):
        """(B, layers*4C) -> per layer (vertical, horizontal) biases (B, 2C, 1, 1)."""
        if bias is None:
            return [(None, None)] * self.num_layers
        b = bias.view(len(bias), self.num_layers, 2, 2 * self.channels, 1, 1)
        return [(b[:, n, 0], b[:, n, 1]) for n in range(self.num_layers)]

    def vertical_features(
        self, e: torch.Tensor, bias: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """The vertical stack alone, on ``e`` ``(B, 1, H, W)`` or a crop of its rows.

        Returns per layer the linked features ``(B, 2C, H, W)`` the horizontal stack
        adds; at row ``i`` they depend on the rows above ``i`` only.
        ``bias = model.class_bias(y)`` for a class-conditional model.
        """
        links, v = [], e
        for n, (vb, _) in enumerate(self._split_bias(bias)):
            pre = self.vertical[n](v)  # (B, 2C, H, W)
            links.append(self.links[n](pre))
            if n + 1 < self.num_layers:  # the last layer's gate would be unused
                v = _gate(pre if vb is None else pre + vb)  # (B, C, H, W)
        return links

    def horizontal_features(
        self,
        e: torch.Tensor,
        links: list[torch.Tensor],
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The horizontal stack alone, ``(B, C, H, W)``, from ``e`` and the vertical
        features of the same rows (any crop of rows, e.g. a single row)."""
        h = e
        for n, (_, hb) in enumerate(self._split_bias(bias)):
            pre = self.horizontal[n](h) + links[n]  # (B, 2C, H, W)
            out = self.outs[n](_gate(pre if hb is None else pre + hb))  # (B, C, H, W)
            h = out if n == 0 else h + out  # no residual from the input: it is x_ij
        return h

    def head_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Horizontal features ``(B, C, H, W)`` to logits ``(B, levels, H, W)``."""
        out = self.head(h)
        if self.head_kind == "logistic":
            return logistic.mixture_log_probs(_precise(out), levels=self.levels)
        return out

    def _logits(self, e: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        links = self.vertical_features(e, bias)
        return self.head_logits(self.horizontal_features(e, links, bias))

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.head_kind == "categorical":
            return super().log_prob(x, y)
        x = self.check_levels(x)
        e = embed_levels(x, self.levels).to(self.param_dtype())  # (B, 1, H, W)
        bias = self.class_bias(y)
        if bias is not None and len(bias) != len(e):
            raise ValueError(f"got {len(y)} labels for {len(e)} images")
        h = self.horizontal_features(e, self.vertical_features(e, bias), bias)
        params = _precise(self.head(h))  # (B, 3K, H, W)
        lp = logistic.mixture_log_prob(x, params, levels=self.levels)
        return lp.sum((1, 2, 3))  # (B,)

    def sampling_session(self, y: torch.Tensor | None) -> "_StackSession":
        return _StackSession(self, self.class_bias(y))


class _StackSession:
    """Exact fast sampling for the gated PixelCNN.

    Once per row, the vertical stack on the ``context_rows`` rows that reach it (a
    crop's zero padding cannot reach its last row) gives the row's linked features.
    Then per pixel the horizontal stack computes only the new column: each layer's
    masked ``1 x k`` kernel reads the ``k`` columns around it from a buffer of that
    layer's input row (the columns to the left were computed at earlier pixels and do
    not change; those to the right are masked out), as one matrix product. Same numbers
    as the full forward pass, in a few small operations per layer.
    """

    def __init__(self, model: GatedPixelCNN, bias: torch.Tensor | None):
        self.model, self.bias = model, bias
        self.h_bias = [hb for _, hb in model._split_bias(bias)]  # (B, 2C, 1, 1) each
        # per layer: the masked kernel as a matrix (2C, C_in * k), its bias, k // 2
        self.kernels = [
            ((conv.weight * conv.mask).flatten(1), conv.bias, conv.kernel_size[1] // 2)
            for conv in model.horizontal
        ]
        self.outs = [(conv.weight.flatten(1), conv.bias) for conv in model.outs]
        self.head = [(m.weight.flatten(1), m.bias) for m in model.head[1::2]]

    def begin_row(self, e: torch.Tensor, i: int) -> None:
        top = max(0, i - self.model.context_rows)
        links = self.model.vertical_features(e[:, :, top : i + 1], self.bias)
        self.links = [f[:, :, -1] for f in links]  # row i of each: (B, 2C, W)
        b, width = len(e), e.shape[3]
        self.rows = [  # each layer's input row, zero-padded by k // 2 on both sides
            e.new_zeros(b, conv.in_channels, width + 2 * half)
            for conv, (_, _, half) in zip(self.model.horizontal, self.kernels)
        ]

    def pixel_logits(self, e: torch.Tensor, i: int, j: int) -> torch.Tensor:
        half0 = self.kernels[0][2]
        self.rows[0][:, 0, half0 : half0 + e.shape[3]] = e[:, 0, i]  # the row so far
        last = len(self.kernels) - 1
        for n, (kernel, k_bias, half) in enumerate(self.kernels):
            window = self.rows[n][:, :, j : j + 2 * half + 1]  # columns j-half..j+half
            pre = F.linear(window.flatten(1), kernel, k_bias) + self.links[n][:, :, j]
            if self.h_bias[n] is not None:
                pre = pre + self.h_bias[n][:, :, 0, 0]  # (B, 2C)
            out = F.linear(_gate(pre), *self.outs[n])  # (B, C)
            h = out if n == 0 else self.rows[n][:, :, half + j] + out  # residual
            if n < last:
                self.rows[n + 1][:, :, self.kernels[n + 1][2] + j] = h
        (w1, b1), (w2, b2) = self.head  # ReLU, 1x1, ReLU, 1x1 as matrices
        out = F.linear(F.relu(F.linear(F.relu(h), w1, b1)), w2, b2)  # (B, levels|3K)
        if self.model.head_kind == "logistic":
            params = out[:, :, None, None].float()  # (B, 3K, 1, 1)
            return logistic.mixture_log_probs(params, levels=self.model.levels)[
                ..., 0, 0
            ]
        return out  # (B, levels)
