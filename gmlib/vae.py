r"""Variational autoencoders: a latent variable model trained through a bound on
$\log p_\theta(x)$.

The generative model is $z \sim p(z) = \mathcal{N}(0, I)$, $x \sim p_\theta(x \mid z)$
(the decoder). The encoder outputs a diagonal Gaussian $q_\phi(z \mid x) =
\mathcal{N}(\mu, \operatorname{diag} \sigma^2)$, parameterized by $\mu$ and
$\log \sigma^2$ ("logvar"). The evidence lower bound (ELBO) is

$$
\log p_\theta(x) \ge \mathbb{E}_{q_\phi(z \mid x)}[\log p_\theta(x \mid z)]
- \mathrm{KL}(q_\phi(z \mid x) \,\|\, p(z)).
$$

Units: every log-probability, KL and bound here is in **nats, summed over the pixels
(or latent dimensions) of one image**, one value per image; divide by
$D \ln 2$ for bits per dimension. The decoders: ``"bernoulli"`` (binary images, logits
per pixel: a true probability of a discrete image) and ``"gaussian"`` (a density on
continuous pixel values with one learned log-variance, not comparable with a discrete
likelihood). Taught in ``notebooks/03_vae.ipynb``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import autoencoder as ae
from .checks import describe, finite_number, float_tensor, positive_int
from .gaussians import (  # noqa: F401 (re-exported: gm.vae.reparameterize, ...)
    LOG_2PI,
    kl_normal,
    log_normal,
    reparameterize,
)

LIKELIHOODS = ("bernoulli", "gaussian")


def binarize(x: torch.Tensor, *, generator: torch.Generator | None = None):
    """Each pixel becomes 1 with probability equal to its gray value (in [0, 1]),
    else 0.

    Drawing anew for every batch is *dynamic binarization*: the model sees a fresh
    binary image each time, and its Bernoulli likelihood is a probability of a discrete
    image.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"expected float images in [0, 1], got {describe(x)}")
    if x.numel() and (x.isnan().any() or x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"expected values in [0, 1], got [{float(x.min()):g}, {float(x.max()):g}]"
        )
    return torch.bernoulli(x, generator=generator)


def decoder_log_prob(model: "VAE", x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    r"""$\log p_\theta(x \mid z)$ in nats per image, for codes ``z`` of shape
    ``(..., B, k)`` and images ``x`` ``(B, C, H, W)``; returns ``(..., B)``.

    Bernoulli: $\sum_j x_j \log \sigma(\ell_j) + (1 - x_j) \log(1 - \sigma(\ell_j))$,
    which needs binary ``x`` (gray values would not make it a probability). Gaussian:
    $\sum_j \log \mathcal{N}(x_j; \hat{x}_j, \sigma_x^2)$ with the model's learned
    $\log \sigma_x^2$.
    """
    _check_model(model)
    model._check(x)
    float_tensor(z, "z")
    if z.ndim < 2 or z.shape[-2] != len(x) or z.shape[-1] != model.latent_dim:
        raise ValueError(
            f"z must be (..., B, k) = (..., {len(x)}, {model.latent_dim}) for "
            f"{len(x)} images, got {tuple(z.shape)}"
        )
    lead = z.shape[:-1]
    out = model.decode_logits(z.reshape(-1, z.shape[-1])).to(_precise(x.dtype))
    out = out.reshape(*lead, *out.shape[1:])  # (..., B, C, H, W)
    if model.likelihood == "bernoulli":
        per_pixel = -F.binary_cross_entropy_with_logits(
            out, x.expand_as(out), reduction="none"
        )
    else:
        logvar = model.log_sigma2_x
        per_pixel = -0.5 * (
            LOG_2PI + logvar + (x - torch.sigmoid(out)).pow(2) * torch.exp(-logvar)
        )
    return per_pixel.flatten(len(lead)).sum(-1)


def _precise(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision inputs or outputs (bf16 autocast), else ``dtype``."""
    return torch.promote_types(dtype, torch.float32)


def _check_model(model) -> None:
    if not isinstance(model, VAE):
        raise TypeError(
            "model must be a VAE (gm.vae.MLPVAE or ConvVAE), got "
            f"{type(model).__name__}"
        )


def _check_target(model: "VAE", x: torch.Tensor) -> None:
    _check_model(model)
    model._check(x)
    if model.likelihood == "bernoulli" and bool(((x != 0) & (x != 1)).any()):
        raise ValueError(
            "the Bernoulli decoder needs binary images (every pixel 0 or 1); "
            "binarize gray images first with gm.vae.binarize(x)"
        )


def elbo(
    model: "VAE",
    x: torch.Tensor,
    *,
    beta: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    r"""The ELBO's terms per image, in nats, each ``(B,)``.

    ``"reconstruction"``: $\log p_\theta(x \mid z)$ at one $z \sim q_\phi(z \mid x)$
    drawn by :func:`reparameterize` (an unbiased estimate of the expectation);
    ``"kl"``: $\mathrm{KL}(q_\phi(z \mid x) \,\|\, p(z))$ in closed form;
    ``"elbo"``: reconstruction $-$ ``beta`` $\times$ KL (with ``beta = 1``, a lower
    bound on $\log p_\theta(x)$).
    """
    beta = finite_number(beta, "beta", minimum=0)
    _check_target(model, x)
    mu, logvar = (t.to(_precise(x.dtype)) for t in model.encode(x))  # (B, k) each
    z = reparameterize(mu, logvar, generator=generator)
    reconstruction = decoder_log_prob(model, x, z)
    kl = kl_normal(mu, logvar)
    return {
        "reconstruction": reconstruction,
        "kl": kl,
        "elbo": reconstruction - beta * kl,
    }


def loss(
    model: "VAE",
    x: torch.Tensor,
    *,
    beta: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    r"""The training loss for :func:`gmlib.fit`: batch means, in nats per image.

    ``"loss"`` $= -(\text{reconstruction} - \beta\, \mathrm{KL})$, plus
    ``"reconstruction"`` ($-\log p_\theta(x \mid z)$, the positive reconstruction
    error) and ``"kl"``, so a training curve can show both. ``generator`` draws the
    code (the global generator if None).
    """
    terms = elbo(model, x, beta=beta, generator=generator)
    if len(x) == 0:
        raise ValueError(
            "the loss is a mean over the batch: expected at least one image, got "
            f"{tuple(x.shape)}"
        )
    return {
        "loss": -terms["elbo"].mean(),
        "reconstruction": -terms["reconstruction"].mean(),
        "kl": terms["kl"].mean(),
    }


@torch.no_grad()
def iwae_bound(
    model: "VAE",
    x: torch.Tensor,
    *,
    k: int,
    proposal: str = "encoder",
    chunk: int = 64,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The importance-weighted bound on $\log p_\theta(x)$, nats per image, ``(B,)``.

    $\log \frac1k \sum_{i=1}^k p_\theta(x, z_i) / r(z_i)$ with $z_i \sim r$, where the
    proposal $r$ is the encoder's $q_\phi(z \mid x)$ (Burda et al., 2016: ``k = 1`` is
    the ELBO, and the bound rises towards $\log p_\theta(x)$ as ``k`` grows)
    or the prior $p(z)$ (``proposal="prior"``: naive Monte Carlo,
    $\log \frac1k \sum_i p_\theta(x \mid z_i)$). Samples are drawn ``chunk`` at a time.
    """
    k = positive_int(k, "k")
    chunk = positive_int(chunk, "chunk")
    if proposal not in ("encoder", "prior"):
        raise ValueError(f"proposal must be 'encoder' or 'prior', got {proposal!r}")
    _check_target(model, x)
    mu, logvar = (t.to(_precise(x.dtype)) for t in model.encode(x))  # (B, k_z) each
    if proposal == "prior":
        mu, logvar = torch.zeros_like(mu), torch.zeros_like(logvar)
    weights = []
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        z = reparameterize(mu, logvar, num_samples=n, generator=generator)  # (n, B, k)
        log_w = decoder_log_prob(model, x, z)  # (n, B): log p(x | z)
        if proposal == "encoder":
            log_w = log_w + log_normal(z) - log_normal(z, mu, logvar)
        weights.append(log_w)
    return torch.logsumexp(torch.cat(weights), dim=0) - math.log(k)


class VAE(nn.Module):
    """What every VAE here has on top of an autoencoder: ``encode(x) -> (mu, logvar)``,
    ``decode_logits(z)``, ``decode(z)`` (the mean of $p_\\theta(x \\mid z)$) and
    ``sample(n)``."""

    latent_dim: int
    likelihood: str

    def _setup_vae(self, likelihood: str) -> None:
        if likelihood not in LIKELIHOODS:
            raise ValueError(
                f"unknown likelihood {likelihood!r}; expected one of "
                f"{', '.join(map(repr, LIKELIHOODS))}"
            )
        self.likelihood = likelihood
        if likelihood == "gaussian":  # log sigma_x^2, learned, shared by all pixels
            self.log_sigma2_x = nn.Parameter(torch.tensor(-3.0))
        head = self.encoder[-1]  # the last Linear: widen it to output mu and logvar
        self.encoder[-1] = nn.Linear(head.in_features, 2 * self.latent_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's $\\mu$ and $\\log \\sigma^2$, ``(B, k)`` each."""
        h = super().encode(x)  # (B, 2k)
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The mean reconstruction: decode the encoder's mean."""
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, mean: bool = True
    ) -> torch.Tensor:
        """``n`` images ``(n, C, H, W)`` from $z \\sim \\mathcal{N}(0, I)$ decoded: the
        decoder's mean (``mean=True``) or a draw from $p_\\theta(x \\mid z)$."""
        n = positive_int(n, "n")
        weight = next(self.parameters())
        device, dtype = weight.device, _precise(weight.dtype)
        z = torch.randn(
            n, self.latent_dim, generator=generator, device=device, dtype=dtype
        )
        x_mean = self.decode(z).to(dtype)
        if mean:
            return x_mean
        if self.likelihood == "bernoulli":
            return torch.bernoulli(x_mean, generator=generator)
        noise = torch.randn(
            x_mean.shape, generator=generator, device=device, dtype=dtype
        )
        return x_mean + torch.exp(0.5 * self.log_sigma2_x) * noise


class MLPVAE(VAE, ae.MLPAutoencoder):
    """Fully connected encoder (to $\\mu$ and $\\log\\sigma^2$) and decoder,
    ReLU between layers: :class:`gmlib.autoencoder.MLPAutoencoder` with a Gaussian
    code."""

    def __init__(
        self,
        *,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        hidden_dims: tuple[int, ...] = (512, 256),
        latent_dim: int = 16,
        likelihood: str = "bernoulli",
    ):
        super().__init__(
            image_shape=image_shape, hidden_dims=hidden_dims, latent_dim=latent_dim
        )
        self._setup_vae(likelihood)


class ConvVAE(VAE, ae.ConvAutoencoder):
    """Strided convolutions down to $\\mu$ and $\\log\\sigma^2$, transposed convolutions
    back up: :class:`gmlib.autoencoder.ConvAutoencoder` with a Gaussian code."""

    def __init__(
        self,
        *,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        channels: tuple[int, ...] = (32, 64),
        latent_dim: int = 16,
        likelihood: str = "bernoulli",
    ):
        super().__init__(
            image_shape=image_shape, channels=channels, latent_dim=latent_dim
        )
        self._setup_vae(likelihood)
