import pytest
import torch

import gmlib as gm
from gmlib import autoencoder as ae

MODELS = [ae.LinearAutoencoder, ae.MLPAutoencoder, ae.ConvAutoencoder]


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8)])
def test_shapes(cls, shape):
    kwargs = {"channels": (8, 16)} if cls is ae.ConvAutoencoder else {}
    model = cls(image_shape=shape, latent_dim=3, **kwargs)
    x = torch.rand(5, *shape)
    z = model.encode(x)
    assert z.shape == (5, 3)
    assert model.decode_logits(z).shape == (5, *shape)
    x_hat = model(x).detach()
    assert x_hat.shape == (5, *shape)
    if cls is not ae.LinearAutoencoder:
        assert float(x_hat.min()) >= 0 and float(x_hat.max()) <= 1


@pytest.mark.parametrize("cls", MODELS)
def test_bad_input_is_explained(cls):
    model = cls(image_shape=(1, 28, 28), latent_dim=4)
    with pytest.raises(TypeError, match="to_float"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\).*\(2, 1, 32, 32\)"):
        model(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model(torch.zeros(1, 28, 28))


def test_conv_needs_divisible_sizes():
    with pytest.raises(ValueError, match="divisible by 2\\*\\*len\\(channels\\) = 4"):
        ae.ConvAutoencoder(image_shape=(1, 30, 30), channels=(8, 16))
    # 32 and 24 divide by 8
    ae.ConvAutoencoder(image_shape=(1, 32, 24), channels=(8, 16, 32))


def test_losses_match_independent_computations():
    model = ae.MLPAutoencoder(image_shape=(1, 8, 8), latent_dim=3)
    x = torch.rand(7, 1, 8, 8)
    logits = model.decode_logits(model.encode(x))
    # grey levels in (0, 1) are soft targets: the same cross-entropy formula, so skip
    # validation
    bernoulli = torch.distributions.Bernoulli(logits=logits, validate_args=False)
    expected_bce = -bernoulli.log_prob(x).sum((1, 2, 3)).mean()
    p = torch.sigmoid(logits)
    by_hand = -(x * p.log() + (1 - x) * (1 - p).log()).sum((1, 2, 3)).mean()
    torch.testing.assert_close(expected_bce, by_hand)
    torch.testing.assert_close(
        ae.reconstruction_loss(model, x, kind="bce"), expected_bce
    )
    expected_mse = ((torch.sigmoid(logits) - x) ** 2).sum((1, 2, 3)).mean()
    torch.testing.assert_close(
        ae.reconstruction_loss(model, x, kind="mse"), expected_mse
    )
    with pytest.raises(ValueError, match="'mse', 'bce'"):
        ae.reconstruction_loss(model, x, kind="l1")
    with pytest.raises(ValueError, match="sigmoid"):
        ae.reconstruction_loss(
            ae.LinearAutoencoder(image_shape=(1, 8, 8)), x, kind="bce"
        )


@pytest.mark.parametrize("cls", [ae.MLPAutoencoder, ae.ConvAutoencoder])
def test_reconstruction_loss_falls(cls):
    x, _ = gm.load("digits", split="train", limit=512)
    gm.seed_everything(0)
    kwargs = (
        {"channels": (16, 32)} if cls is ae.ConvAutoencoder else {"hidden_dims": (64,)}
    )
    model = cls(image_shape=(1, 8, 8), latent_dim=8, **kwargs)
    history = gm.fit(
        model,
        x,
        loss_fn=lambda m, x: ae.reconstruction_loss(m, x, kind="bce"),
        num_epochs=20,
        batch_size=64,
        lr=3e-3,
        seed=0,
    )
    assert history.loss[-1] < 0.85 * history.loss[0]


def test_linear_autoencoder_learns_the_pca_subspace():
    """Baldi & Hornik (1989): the optimum of a linear AE under squared error spans the
    top-k PCs."""
    x = gm.data.to_float(gm.load("digits", split="train").images)  # (N, 1, 8, 8)
    flat = x.flatten(1).double()
    centered = flat - flat.mean(0)
    k = 5
    _, s, vt = torch.linalg.svd(centered, full_matrices=False)
    pcs = vt[:k].T  # (64, k) orthonormal
    pca_error = (s[k:] ** 2).sum() / len(flat)  # Eckart-Young optimum

    gm.seed_everything(0)
    model = ae.LinearAutoencoder(image_shape=(1, 8, 8), latent_dim=k).double()
    opt = torch.optim.LBFGS(
        model.parameters(),
        max_iter=500,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = ae.reconstruction_loss(model, x.double(), kind="mse")
        loss.backward()
        return loss

    opt.step(closure)
    loss = closure().detach()
    assert float(loss) == pytest.approx(float(pca_error), rel=0.01)
    assert float(loss) >= float(pca_error) * (1 - 1e-6)  # PCA is the optimum
    decoder_basis, _ = torch.linalg.qr(model.decoder.weight.detach())  # (64, k)
    # the cosines of the principal angles between the two subspaces
    cos_angles = torch.linalg.svdvals(pcs.T @ decoder_basis)
    assert float(cos_angles.min()) > 0.99
