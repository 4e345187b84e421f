r"""Autoencoders: an encoder maps an image $x$ to a smaller code $z$, a decoder maps it
back.

Training minimizes a reconstruction loss between $x$ and $\hat{x} = g(f(x))$, either the
squared error $\lVert x - \hat{x} \rVert^2$ or the binary cross-entropy
$-\sum_j x_j \log \hat{x}_j + (1 - x_j) \log (1 - \hat{x}_j)$, summed over pixels and
averaged over the batch. A linear autoencoder trained with squared error learns the same
subspace as PCA (Baldi & Hornik, 1989). Taught in ``notebooks/01_autoencoders.ipynb``.

Every model here has ``encode(x) -> z``, ``decode_logits(z)``, ``decode(z) -> x_hat``
and ``forward(x) -> x_hat``; images are float ``(B, C, H, W)`` in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .checks import describe, image_shape, positive_int, positive_ints

LOSSES = ("mse", "bce")


class _Autoencoder(nn.Module):
    """Input checks and the decode/forward plumbing shared by every autoencoder here."""

    image_shape: tuple[int, int, int]
    sigmoid_output: bool = True

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"expected a torch.Tensor of images, got {type(x).__name__}"
            )
        if not x.is_floating_point():
            raise TypeError(
                f"expected float images in [0, 1], got dtype {x.dtype}; "
                "convert uint8 images with gm.data.to_float(images)"
            )
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                "expected images of shape "
                f"(B, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}"
            )

    def _param_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _check_code(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` as ``(B, latent_dim)`` in the parameters' dtype, or a
        TypeError/ValueError."""
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(f"expected a float tensor of codes, got {describe(z)}")
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"expected codes of shape (B, {self.latent_dim}), got {tuple(z.shape)}"
            )
        return z.to(self._param_dtype())

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x_hat = g(z): pixel values in [0, 1] (a sigmoid of the logits) for the image
        models."""
        logits = self.decode_logits(z)
        return torch.sigmoid(logits) if self.sigmoid_output else logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class _FlatAutoencoder(_Autoencoder):
    """Encoder and decoder that see an image as one flat vector of C * H * W numbers."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.encoder(x.flatten(1).to(self._param_dtype()))  # (B, latent_dim)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        z = self._check_code(z)
        return self.decoder(z).unflatten(1, self.image_shape)  # (B, C, H, W)


class LinearAutoencoder(_FlatAutoencoder):
    r"""$z = W_e x + b_e$, $\hat{x} = W_d z + b_d$: no nonlinearity, no sigmoid.

    With squared error its decoder spans the top-``latent_dim`` principal subspace of
    the data. Taught in ``notebooks/01_autoencoders.ipynb``, "A linear autoencoder finds
    the PCA subspace".
    """

    sigmoid_output = False

    def __init__(
        self, *, image_shape: tuple[int, int, int] = (1, 28, 28), latent_dim: int = 2
    ):
        super().__init__()
        self.image_shape = _image_shape(image_shape)
        dim = math.prod(self.image_shape)
        if positive_int(latent_dim, "latent_dim") > dim:
            raise ValueError(f"latent_dim must be in 1..{dim}, got {latent_dim}")
        self.latent_dim = latent_dim
        self.encoder = nn.Linear(dim, latent_dim)
        self.decoder = nn.Linear(latent_dim, dim)


class MLPAutoencoder(_FlatAutoencoder):
    """Fully connected encoder and decoder with ReLU between the layers.

    Taught in ``notebooks/01_autoencoders.ipynb``, "Deep autoencoders: fully connected
    and convolutional".
    """

    def __init__(
        self,
        *,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        hidden_dims: tuple[int, ...] = (512, 256),
        latent_dim: int = 16,
    ):
        super().__init__()
        self.image_shape = _image_shape(image_shape)
        self.latent_dim = positive_int(latent_dim, "latent_dim")
        hidden_dims = positive_ints(hidden_dims, "hidden_dims")
        dims = [math.prod(self.image_shape), *hidden_dims, latent_dim]  # D -> ... -> k
        self.encoder = _mlp(dims)
        self.decoder = _mlp(dims[::-1])  # k -> ... -> D


def _image_shape(value) -> tuple[int, int, int]:
    return image_shape(value, "image_shape")


def _mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers through ``dims``, a ReLU between each two (none after the last)."""
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class ConvAutoencoder(_Autoencoder):
    """Strided convolutions down, a linear bottleneck, transposed convolutions back up.

    Each of the ``len(channels)`` stages halves the height and width, so both must be
    divisible by ``2 ** len(channels)`` (28 x 28 with two stages:
    28 -> 14 -> 7 -> 14 -> 28). Taught in ``notebooks/01_autoencoders.ipynb``, "Deep
    autoencoders: fully connected and convolutional".
    """

    def __init__(
        self,
        *,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        channels: tuple[int, ...] = (32, 64),
        latent_dim: int = 16,
    ):
        super().__init__()
        self.image_shape = _image_shape(image_shape)
        self.latent_dim = positive_int(latent_dim, "latent_dim")
        channels = positive_ints(channels, "channels")
        if not channels:
            raise ValueError("channels must name at least one stage, got ()")
        c, h, w = self.image_shape
        factor = 2 ** len(channels)
        if h % factor or w % factor:
            raise ValueError(
                f"height and width must be divisible by 2**len(channels) = {factor} "
                f"(one halving per stage), got {h} x {w}"
            )
        # (C', H', W') at the bottleneck
        self.bottom = (channels[-1], h // factor, w // factor)
        down: list[nn.Module] = []
        for a, b in zip([c, *channels[:-1]], channels):  # each stage: H -> H/2
            down += [nn.Conv2d(a, b, kernel_size=4, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(
            *down, nn.Flatten(), nn.Linear(math.prod(self.bottom), latent_dim)
        )
        up: list[nn.Module] = [
            nn.Linear(latent_dim, math.prod(self.bottom)),
            nn.ReLU(),
            nn.Unflatten(1, self.bottom),
        ]
        rev = list(reversed(channels))
        for a, b in zip(rev, [*rev[1:], c]):  # each stage: H -> 2H
            up += [
                nn.ConvTranspose2d(a, b, kernel_size=4, stride=2, padding=1),
                nn.ReLU(),
            ]
        self.decoder = nn.Sequential(*up[:-1])  # no ReLU on the logits

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.encoder(x.to(self._param_dtype()))  # (B, latent_dim)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self._check_code(z))  # (B, C, H, W)


def reconstruction_loss(
    model: _Autoencoder, x: torch.Tensor, *, kind: str = "mse"
) -> torch.Tensor:
    r"""Reconstruction loss summed over pixels, averaged over the batch.

    ``"mse"``: $\sum_j (x_j - \hat{x}_j)^2$; ``"bce"``: $-\sum_j x_j \log \hat{x}_j +
    (1 - x_j) \log(1 - \hat{x}_j)$, computed from the logits for numerical stability.
    Taught in ``notebooks/01_autoencoders.ipynb``, "The autoencoder idea".
    """
    if not isinstance(model, _Autoencoder):
        raise TypeError(
            "model must be an autoencoder of gm.autoencoder, got "
            f"{type(model).__name__}"
        )
    if kind not in LOSSES:
        raise ValueError(
            f"unknown loss {kind!r}; expected one of {', '.join(map(repr, LOSSES))}"
        )
    model._check(x)
    if len(x) == 0:
        raise ValueError(
            "the loss is a mean over the batch: expected at least one image, got "
            f"{tuple(x.shape)}"
        )
    logits = model.decode_logits(model.encode(x)).float()  # (B, C, H, W)
    if kind == "bce":
        if not model.sigmoid_output:
            raise ValueError("the BCE loss needs a model with a sigmoid output")
        per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        x_hat = torch.sigmoid(logits) if model.sigmoid_output else logits
        per_pixel = (x_hat - x) ** 2
    return per_pixel.flatten(1).sum(1).mean()
