r"""A latent variable model where everything is exact: the linear-Gaussian model.

$z \sim \mathcal{N}(0, I_k)$, $x \mid z \sim \mathcal{N}(W z + b, \sigma^2 I_D)$
(probabilistic PCA). Its evidence and posterior have closed forms,

$$
p(x) = \mathcal{N}(x;\, b,\, W W^\top + \sigma^2 I), \qquad
p(z \mid x) = \mathcal{N}\bigl(z;\, \Sigma W^\top (x - b) / \sigma^2,\, \Sigma\bigr),
\quad \Sigma = (I + W^\top W / \sigma^2)^{-1},
$$

so every step of the ELBO derivation, and every gradient estimator, can be checked
against the truth. All values are nats (summed over dimensions), one per data point.
Taught in ``notebooks/03_vae.ipynb``, "The ELBO, line by line".
"""

from __future__ import annotations

import math

import torch
from torch.distributions import MultivariateNormal, kl_divergence

from .checks import finite_number, float_tensor, positive_int
from .gaussians import kl_normal, log_normal


class LinearGaussian:
    """The model with weights ``W`` ``(D, k)``, offset ``b`` ``(D,)`` and noise variance
    ``sigma2``; use float64 tensors for checks to 1e-5."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor, sigma2: float):
        float_tensor(W, "W")
        float_tensor(b, "b")
        if W.ndim != 2 or b.shape != W.shape[:1] or 0 in W.shape:
            raise ValueError(
                f"expected W (D, k) and b (D,), got {tuple(W.shape)} and "
                f"{tuple(b.shape)}" + (" (D and k must be >= 1)" if W.ndim == 2 else "")
            )
        if W.dtype != b.dtype:
            raise TypeError(f"W and b must have one dtype, got {W.dtype} and {b.dtype}")
        if not bool(torch.isfinite(W).all() and torch.isfinite(b).all()):
            raise ValueError("W and b must be finite, got NaN or inf")
        if isinstance(sigma2, torch.Tensor) and sigma2.ndim == 0:
            sigma2 = sigma2.item()
        self.sigma2 = finite_number(sigma2, "sigma2", minimum=0, strict=True)
        self.W, self.b = W, b
        self.D, self.k = W.shape

    def _check(self, t: torch.Tensor, name: str, size: int, letter: str) -> None:
        """``t`` a float tensor ``(..., size)``."""
        float_tensor(t, name)
        if t.ndim < 1 or t.shape[-1] != size:
            raise ValueError(
                f"{name} must be (..., {letter}) = (..., {size}), got {tuple(t.shape)}"
            )

    def _check_x(self, x: torch.Tensor) -> None:
        self._check(x, "x", self.D, "D")

    def _check_q(self, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        self._check(mu, "mu", self.k, "k")
        self._check(logvar, "logvar", self.k, "k")

    @classmethod
    def random(
        cls,
        D: int,
        k: int,
        *,
        sigma2: float = 0.5,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> "LinearGaussian":
        """Random weights, scaled so every x_d has a variance near 1 + sigma2."""
        D, k = positive_int(D, "D"), positive_int(k, "k")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a float dtype, got {dtype!r}")
        W = torch.randn(D, k, generator=generator, dtype=dtype) / math.sqrt(k)
        b = torch.randn(D, generator=generator, dtype=dtype)
        return cls(W, b, sigma2)

    def sample(self, n: int, *, generator: torch.Generator | None = None):
        """``(x, z)``: ``n`` draws of the joint, ``(n, D)`` and ``(n, k)``."""
        n = positive_int(n, "n")
        z = torch.randn(n, self.k, generator=generator, dtype=self.W.dtype)
        noise = torch.randn(n, self.D, generator=generator, dtype=self.W.dtype)
        return z @ self.W.T + self.b + math.sqrt(self.sigma2) * noise, z

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z), ``(..., k) -> (...)``."""
        self._check(z, "z", self.k, "k")
        return log_normal(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) for ``x`` ``(..., D)`` and ``z`` ``(..., k)``."""
        self._check_x(x)
        self._check(z, "z", self.k, "k")
        return log_normal(x, z @ self.W.T + self.b, math.log(self.sigma2))

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log p(x | z) + log p(z)."""
        return self.log_likelihood(x, z) + self.log_prior(z)

    def marginal(self) -> MultivariateNormal:
        """p(x) = N(b, W W^T + sigma^2 I)."""
        cov = self.W @ self.W.T + self.sigma2 * torch.eye(self.D, dtype=self.W.dtype)
        return MultivariateNormal(self.b, covariance_matrix=cov)

    def log_evidence(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x), exact, ``(..., D) -> (...)``."""
        self._check_x(x)
        return self.marginal().log_prob(x)

    def posterior(self, x: torch.Tensor) -> MultivariateNormal:
        """p(z | x), exact (a full-covariance Gaussian, batched over ``x``)."""
        self._check_x(x)
        eye = torch.eye(self.k, dtype=self.W.dtype)
        cov = torch.linalg.inv(eye + self.W.T @ self.W / self.sigma2)  # (k, k)
        mean = (x - self.b) @ self.W @ cov.T / self.sigma2  # (..., k)
        return MultivariateNormal(mean, covariance_matrix=cov)

    def log_posterior(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(z | x)."""
        self._check(z, "z", self.k, "k")
        return self.posterior(x).log_prob(z)

    def expected_log_likelihood(
        self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> torch.Tensor:
        r"""$\mathbb{E}_{q}[\log p(x \mid z)]$ for $q = \mathcal{N}(\mu,
        \operatorname{diag} e^{\text{logvar}})$, in closed form:
        $-\tfrac{D}{2}\log(2\pi\sigma^2) - \bigl(\lVert x - W\mu - b \rVert^2
        + \sum_{d,j} W_{dj}^2 \sigma_j^2\bigr) / (2\sigma^2)$."""
        self._check_x(x)
        self._check_q(mu, logvar)
        residual = (x - mu @ self.W.T - self.b).pow(2).sum(-1)
        spread = (logvar.exp() @ self.W.pow(2).T).sum(-1)
        return -0.5 * self.D * math.log(2 * math.pi * self.sigma2) - (
            residual + spread
        ) / (2 * self.sigma2)

    def elbo(
        self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> torch.Tensor:
        """The ELBO of a diagonal Gaussian q, exact:
        E_q[log p(x | z)] - KL(q || p(z))."""
        return self.expected_log_likelihood(x, mu, logvar) - kl_normal(mu, logvar)

    def kl_to_posterior(
        self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> torch.Tensor:
        """KL(q || p(z | x)), exact, through torch.distributions."""
        self._check_x(x)
        self._check_q(mu, logvar)
        q = MultivariateNormal(mu, covariance_matrix=torch.diag_embed(logvar.exp()))
        return kl_divergence(q, self.posterior(x))
