r"""What every autoregressive image model here shares: levels, checks, likelihood.

An autoregressive model factorizes $p(x) = \prod_t p(x_t \mid x_{<t})$ over the pixels
in raster order. Pixels are discrete *levels* $0, \dots, L-1$ (:func:`quantize` turns
8-bit images into them), so every conditional is a categorical distribution over $L$
values and $\log p(x)$ is exact: no bound, no latent variable. It is reported in bits
per dimension, $-\log_2 p(x) / D$; a model that knows nothing (uniform over $L$ levels)
scores $\log_2 L$.

:class:`AutoregressiveModel` is the base of ``gmlib.pixelcnn``'s PixelCNNs and
``gmlib.pixelrnn``'s PixelRNN: levels ``(B, 1, H, W)`` in, logits ``(B, L, H, W)`` out
(the shape ``F.cross_entropy`` takes). Inside, level $x$ enters as the number
$2x/(L-1) - 1 \in [-1, 1]$ (:func:`embed_levels`); ``forward_embedded`` takes that float
image, so the logits can be differentiated with respect to the input. Taught in
``notebooks/02_pixelcnn.ipynb``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .checks import describe, is_integer_tensor, positive_int

# --- levels ---------------------------------------------------------------------------


def quantize(images: torch.Tensor, levels: int) -> torch.Tensor:
    """8-bit images to levels ``0..levels-1`` (int64, same shape), in equal-width bins.

    uint8 ``v`` gives ``v * levels // 256``: ``levels=256`` keeps ``v``, ``levels=2``
    binarizes at 128. Floats in [0, 1] (as ``gm.fit`` passes them) are read as
    ``round(255 x)`` first, so both forms of an image give the same levels.
    """
    levels = _levels(levels)
    if levels > 256:
        raise ValueError(f"8-bit images have at most 256 levels, got levels={levels}")
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(images).__name__}")
    if images.dtype == torch.uint8:
        v = images.long()
    elif images.is_floating_point():
        if images.numel() and not (images.min() >= 0 and images.max() <= 1):
            raise ValueError(
                "expected float images in [0, 1], got values in "
                f"[{float(images.min()):.3g}, {float(images.max()):.3g}]"
            )
        v = (images.float() * 255).round().long()
    else:
        raise TypeError(
            f"expected uint8 images or floats in [0, 1], got dtype {images.dtype}"
        )
    return v * levels // 256


def dequantize(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Levels back to floats in [0, 1] for display: ``x / (levels - 1)``."""
    levels = _levels(levels)
    if not is_integer_tensor(x):
        raise TypeError(f"expected an integer tensor of levels, got {describe(x)}")
    _check_range(x, levels)
    return x.float() / (levels - 1)


def embed_levels(x: torch.Tensor, levels: int) -> torch.Tensor:
    """The float every model reads for level ``x``: ``2 x / (levels - 1) - 1`` in
    [-1, 1]. (Values are not checked here: :meth:`AutoregressiveModel.check_levels`
    does that once per batch.)"""
    levels = _levels(levels)
    if not is_integer_tensor(x):
        raise TypeError(f"expected an integer tensor of levels, got {describe(x)}")
    return x.float() * (2 / (levels - 1)) - 1


def _levels(levels) -> int:
    return positive_int(levels, "levels", minimum=2)


def _check_range(x: torch.Tensor, levels: int) -> None:
    """Every value of ``x`` in ``0..levels-1`` (reads the values)."""
    if x.numel():
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= levels:
            raise ValueError(
                f"levels must be in 0..{levels - 1}, got values in {lo}..{hi}; "
                f"quantize images with gm.pixelcnn.quantize(images, {levels})"
            )


# --- the shared base ------------------------------------------------------------------


class AutoregressiveModel(nn.Module):
    """What every model here shares: input checks, labels, ``forward`` and
    ``log_prob``.

    A subclass sets ``levels`` and ``num_classes`` (through :meth:`_init_classes`) and
    implements ``_logits(e, bias)`` for the embedded image ``e`` and the class bias.
    """

    levels: int
    num_classes: int | None

    def _init_classes(self, num_classes: int | None, size: int) -> None:
        """Labels ``0..num_classes-1`` get a learned vector of ``size`` numbers."""
        self.class_embedding = None
        if num_classes is not None:
            num_classes = positive_int(num_classes, "num_classes")
            self.class_embedding = nn.Embedding(num_classes, size)
        self.num_classes = num_classes

    def check_levels(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as int64 levels ``(B, 1, H, W)``, or a ValueError/TypeError saying
        what is wrong."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor of levels, got {describe(x)}")
        if not is_integer_tensor(x):
            raise TypeError(
                f"expected integer pixel levels 0..{self.levels - 1}, got dtype "
                f"{x.dtype}; convert images with gm.pixelcnn.quantize(images, "
                f"{self.levels})"
            )
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(
                f"expected levels of shape (B, 1, H, W), got {tuple(x.shape)}"
            )
        if 0 in x.shape:
            raise ValueError(
                "expected levels of shape (B, 1, H, W) with B, H, W >= 1, got "
                f"{tuple(x.shape)}"
            )
        _check_range(x, self.levels)
        return x.long()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Checked levels ``(B, 1, H, W)`` to the float input ``(B, 1, H, W)`` in
        [-1, 1]."""
        return embed_levels(self.check_levels(x), self.levels)

    def class_bias(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The learned vector of each label, ``(B, size)``; ``None`` for a model
        without classes. Checks ``y``."""
        if self.num_classes is None:
            if y is not None:
                raise ValueError("this model has no classes (num_classes=None), got y")
            return None
        if y is None:
            raise ValueError(
                f"this model is class-conditional: pass labels y in "
                f"0..{self.num_classes - 1}"
            )
        if not is_integer_tensor(y) or y.ndim != 1:
            raise TypeError(f"expected integer labels of shape (B,), got {describe(y)}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(
                f"unknown class label: labels must be in 0..{self.num_classes - 1}, "
                f"got values in {int(y.min())}..{int(y.max())}"
            )
        return self.class_embedding(y.long())

    def forward_embedded(
        self, e: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``(B, levels, H, W)`` from the embedded image ``e`` ``(B, 1, H, W)``
        (differentiable in ``e``)."""
        if not isinstance(e, torch.Tensor) or not e.is_floating_point():
            raise TypeError(f"expected the float embedded image, got {describe(e)}")
        if e.ndim != 4 or e.shape[1] != 1:
            raise ValueError(f"expected (B, 1, H, W), got {tuple(e.shape)}")
        bias = self.class_bias(y)
        if bias is not None and len(bias) != len(e):
            raise ValueError(f"got {len(y)} labels for {len(e)} images")
        return self._logits(e.to(self.param_dtype()), bias)

    def param_dtype(self) -> torch.dtype:
        """The parameters' float dtype: inputs of another precision are cast to it."""
        return next(self.parameters()).dtype

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        r"""Logits ``(B, levels, H, W)``: at ``(i, j)`` those of $p(x_{ij} \mid$ the
        pixels before it$)$."""
        return self.forward_embedded(self.embed(x), y)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        r"""$\log p(x)$ in nats per image, ``(B,)``: the sum of the pixels' log
        conditionals."""
        x = self.check_levels(x)
        logits = self.forward_embedded(embed_levels(x, self.levels), y)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return -F.cross_entropy(logits, x[:, 0], reduction="none").sum((1, 2))

    def sampling_session(self, y: torch.Tensor | None):
        """The exact fast sampler's per-pixel computation (``gmlib.sampling``)."""
        raise NotImplementedError


# --- likelihood and losses ------------------------------------------------------------


def nll(
    model: AutoregressiveModel, x: torch.Tensor, y: torch.Tensor | None = None
) -> torch.Tensor:
    r"""$-\log p(x)$ in nats per image, averaged over the batch (differentiable)."""
    _check_model(model)
    return -model.log_prob(x, y).mean()


def _check_model(model) -> None:
    if not isinstance(model, AutoregressiveModel):
        raise TypeError(
            "model must be an autoregressive model (gm.pixelcnn.PixelCNN, "
            f"GatedPixelCNN or gm.pixelrnn.PixelRNN), got {type(model).__name__}"
        )


def bits_per_dim(nats_per_image, num_dims: int):
    r"""Nats per image to bits per dimension: $\text{nats} / (D \ln 2)$."""
    if isinstance(nats_per_image, bool) or not isinstance(
        nats_per_image, (int, float, torch.Tensor)
    ):
        raise TypeError(
            "nats_per_image must be a number or a tensor, got "
            f"{describe(nats_per_image)}"
        )
    return nats_per_image / (positive_int(num_dims, "num_dims") * math.log(2))


@torch.no_grad()
def model_bits_per_dim(
    model: AutoregressiveModel,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    batch_size: int = 256,
) -> float:
    """The model's mean bits/dim on levels ``x`` (e.g. a test set), in batches, no
    grad."""
    _check_model(model)
    batch_size = positive_int(batch_size, "batch_size")
    x = model.check_levels(x)
    if y is not None:
        if not is_integer_tensor(y) or y.ndim != 1:
            raise TypeError(f"expected integer labels of shape (B,), got {describe(y)}")
        if len(y) != len(x):
            raise ValueError(f"got {len(y)} labels for {len(x)} images")
    dev = next(model.parameters()).device
    total = 0.0
    for s in range(0, len(x), batch_size):
        yb = None if y is None else y[s : s + batch_size].to(dev)
        total += float(model.log_prob(x[s : s + batch_size].to(dev), yb).sum())
    return bits_per_dim(-total / len(x), x[0].numel())


def pixelcnn_loss(levels: int | None = None):
    """A ``loss_fn`` for ``gm.fit``: quantizes the float batch to the model's levels
    and returns ``{"loss": nats per dimension, "bits_per_dim": ...}``.

    Use ``loss_fn=pixelcnn_loss()`` (or ``pixelcnn_loss(levels)`` to assert the
    model's ``levels``); with ``labels=`` given to ``fit`` the labels are passed on.
    """
    if levels is not None:
        levels = _levels(levels)
        if levels > 256:
            raise ValueError(
                f"8-bit images have at most 256 levels, got levels={levels}"
            )

    def loss_fn(model, x, y=None):
        _check_model(model)
        if levels is not None and model.levels != levels:
            raise ValueError(
                f"the loss is for {levels} levels, the model has {model.levels}"
            )
        xq = quantize(x, model.levels)  # (B, 1, H, W) int64
        per_dim = nll(model, xq, y) / xq[0].numel()
        return {"loss": per_dim, "bits_per_dim": per_dim.detach() / math.log(2)}

    return loss_fn
