"""Bad input to the model modules: each case is one clear ValueError or TypeError
raised by gmlib itself (never an IndexError or RuntimeError from inside torch), whose
message names the argument and what was expected; the ``WORKS`` table holds the edge
cases that are accepted, with the result they must give (empty batches, odd sizes,
other float precisions)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import gmlib
from gmlib import autoencoder as ae
from gmlib import autoregressive as ar
from gmlib import checks, vae
from gmlib import diffusion as df
from gmlib import diffusion_elbo as de
from gmlib import gaussians as ga
from gmlib import linear_gaussian as lg
from gmlib import logistic as lo
from gmlib import pixelcnn as pc
from gmlib import pixelrnn as pr
from gmlib import unet as un

pytestmark = pytest.mark.usefixtures("one_thread")

GMLIB = Path(gmlib.__file__).parent
NAN, INF = float("nan"), float("inf")
L = torch.long
U8 = torch.uint8
X8 = torch.full((2, 1, 8, 8), 0.5)  # float images in [0, 1]
BIN = (torch.arange(128).view(2, 1, 8, 8) % 2).float()  # binary images
LEV = torch.arange(72).view(2, 1, 6, 6) % 4  # levels 0..3
T2 = torch.tensor([0, 1])
MU = torch.zeros(2, 3)


def mlp():
    return ae.MLPAutoencoder(image_shape=(1, 8, 8), hidden_dims=(8,), latent_dim=2)


def conv():
    return ae.ConvAutoencoder(image_shape=(1, 8, 8), channels=(2,), latent_dim=2)


def mvae():
    return vae.MLPVAE(image_shape=(1, 8, 8), hidden_dims=(8,), latent_dim=2)


def pcnn(**kw):
    return pc.PixelCNN(levels=4, channels=4, num_layers=2, **kw)


def gated(**kw):
    return pc.GatedPixelCNN(levels=4, channels=4, num_layers=2, **kw)


def rnn():
    return pr.PixelRNN(levels=4, hidden_size=4)


def unet(**kw):
    return un.UNet(channels=4, **kw)


def lgm():
    return lg.LinearGaussian.random(4, 2)


def eps0(x, t, y=None):
    return torch.zeros_like(x)


def f64(*shape):
    return torch.zeros(*shape, dtype=torch.float64)


S10 = df.Schedule.cosine(10)
IMG_U8 = torch.zeros(2, 1, 4, 4, dtype=U8)
P6 = torch.zeros(2, 6, 6, 6)  # mixture parameters, K = 2
M2 = torch.zeros(2, 2, 6, 6)  # means / log-scales, K = 2

# id -> (call, exception, pattern the message must match)
BAD = {
    # --- gmlib.autoencoder: constructors ----------------------------------------------
    "mlp-ae-latent_dim=0": (
        lambda: ae.MLPAutoencoder(latent_dim=0),
        ValueError,
        "latent_dim must be an int >= 1, got 0",
    ),
    "mlp-ae-latent_dim=-1": (
        lambda: ae.MLPAutoencoder(latent_dim=-1),
        ValueError,
        "latent_dim must be an int >= 1, got -1",
    ),
    "mlp-ae-latent_dim=2.5": (
        lambda: ae.MLPAutoencoder(latent_dim=2.5),
        ValueError,
        "latent_dim must be an int >= 1, got 2.5",
    ),
    "mlp-ae-hidden_dims=(0,)": (
        lambda: ae.MLPAutoencoder(hidden_dims=(0,)),
        ValueError,
        r"hidden_dims must be positive ints, got \(0,\)",
    ),
    "mlp-ae-hidden_dims=(-1,)": (
        lambda: ae.MLPAutoencoder(hidden_dims=(-1,)),
        ValueError,
        r"hidden_dims must be positive ints, got \(-1,\)",
    ),
    "mlp-ae-hidden_dims-int": (
        lambda: ae.MLPAutoencoder(hidden_dims=8),
        ValueError,
        "hidden_dims must be positive ints, got 8",
    ),
    "mlp-ae-image_shape-2d": (
        lambda: ae.MLPAutoencoder(image_shape=(28, 28)),
        ValueError,
        r"image_shape must be \(C, H, W\), three ints >= 1, got \(28, 28\)",
    ),
    "mlp-ae-image_shape-zero": (
        lambda: ae.MLPAutoencoder(image_shape=(1, 0, 28)),
        ValueError,
        r"image_shape must be \(C, H, W\).*got \(1, 0, 28\)",
    ),
    "conv-ae-channels=()": (
        lambda: ae.ConvAutoencoder(channels=()),
        ValueError,
        r"channels must name at least one stage, got \(\)",
    ),
    "conv-ae-channels=(0,4)": (
        lambda: ae.ConvAutoencoder(channels=(0, 4)),
        ValueError,
        r"channels must be positive ints, got \(0, 4\)",
    ),
    "conv-ae-channels-int": (
        lambda: ae.ConvAutoencoder(channels=4),
        ValueError,
        "channels must be positive ints, got 4",
    ),
    "conv-ae-latent_dim=0": (
        lambda: ae.ConvAutoencoder(latent_dim=0),
        ValueError,
        "latent_dim must be an int >= 1, got 0",
    ),
    "conv-ae-image_shape-2d": (
        lambda: ae.ConvAutoencoder(image_shape=(28, 28)),
        ValueError,
        r"image_shape must be \(C, H, W\)",
    ),
    "conv-ae-image-size-indivisible": (
        lambda: ae.ConvAutoencoder(image_shape=(1, 10, 10), channels=(2, 2)),
        ValueError,
        r"divisible by 2\*\*len\(channels\) = 4.*got 10 x 10",
    ),
    "linear-ae-latent_dim=True": (
        lambda: ae.LinearAutoencoder(latent_dim=True),
        ValueError,
        "latent_dim must be an int >= 1, got True",
    ),
    "linear-ae-latent_dim-too-big": (
        lambda: ae.LinearAutoencoder(image_shape=(1, 2, 2), latent_dim=5),
        ValueError,
        r"latent_dim must be in 1\.\.4, got 5",
    ),
    # --- gmlib.autoencoder: inputs ----------------------------------------------------
    "ae-encode-list": (
        lambda: mlp().encode(X8.tolist()),
        TypeError,
        "expected a torch.Tensor of images, got list",
    ),
    "ae-encode-ndarray": (
        lambda: mlp()(X8.numpy()),
        TypeError,
        "expected a torch.Tensor of images, got ndarray",
    ),
    "ae-encode-uint8": (
        lambda: conv()(torch.zeros(2, 1, 8, 8, dtype=U8)),
        TypeError,
        "float images in \\[0, 1\\], got dtype torch.uint8.*to_float",
    ),
    "ae-encode-3d": (
        lambda: mlp()(X8[0]),
        ValueError,
        r"shape \(B, 1, 8, 8\), got \(1, 8, 8\)",
    ),
    "ae-encode-channels": (
        lambda: conv()(torch.zeros(2, 3, 8, 8)),
        ValueError,
        r"shape \(B, 1, 8, 8\), got \(2, 3, 8, 8\)",
    ),
    "ae-decode-wrong-latent": (
        lambda: mlp().decode(torch.zeros(2, 3)),
        ValueError,
        r"codes of shape \(B, 2\), got \(2, 3\)",
    ),
    "conv-ae-decode-1d": (
        lambda: conv().decode(torch.zeros(2)),
        ValueError,
        r"codes of shape \(B, 2\), got \(2,\)",
    ),
    "ae-decode-int": (
        lambda: mlp().decode(torch.zeros(2, 2, dtype=L)),
        TypeError,
        "float tensor of codes, got dtype torch.int64",
    ),
    "ae-loss-kind": (
        lambda: ae.reconstruction_loss(mlp(), X8, kind="l1"),
        ValueError,
        "unknown loss 'l1'; expected one of 'mse', 'bce'",
    ),
    "ae-loss-empty-batch": (
        lambda: ae.reconstruction_loss(mlp(), X8[:0]),
        ValueError,
        r"at least one image, got \(0, 1, 8, 8\)",
    ),
    "ae-loss-not-an-autoencoder": (
        lambda: ae.reconstruction_loss(torch.nn.Linear(2, 2), X8),
        TypeError,
        "model must be an autoencoder.*got Linear",
    ),
    # --- gmlib.autoregressive: levels, likelihood, losses -----------------------------
    "quantize-levels=1": (
        lambda: ar.quantize(X8, 1),
        ValueError,
        "levels must be an int >= 2, got 1",
    ),
    "quantize-levels=257": (
        lambda: ar.quantize(X8, 257),
        ValueError,
        "at most 256 levels, got levels=257",
    ),
    "quantize-nan": (
        lambda: ar.quantize(torch.full((2, 2), NAN), 4),
        ValueError,
        r"float images in \[0, 1\], got values in \[nan, nan\]",
    ),
    "quantize-inf": (
        lambda: ar.quantize(torch.tensor([0.0, INF]), 4),
        ValueError,
        r"float images in \[0, 1\]",
    ),
    "quantize-float-above-1": (
        lambda: ar.quantize(torch.tensor([0.0, 255.0]), 4),
        ValueError,
        r"float images in \[0, 1\], got values in \[0, 255\]",
    ),
    "quantize-int64-256": (
        lambda: ar.quantize(torch.tensor([0, 256]), 256),
        TypeError,
        r"uint8 images or floats in \[0, 1\], got dtype torch.int64",
    ),
    "quantize-ndarray": (
        lambda: ar.quantize(np.zeros(3, dtype=np.uint8), 4),
        TypeError,
        "expected a torch.Tensor, got ndarray",
    ),
    "dequantize-levels-out-of-range": (
        lambda: ar.dequantize(torch.tensor([0, 4]), 4),
        ValueError,
        r"levels must be in 0\.\.3, got values in 0\.\.4",
    ),
    "dequantize-negative-level": (
        lambda: ar.dequantize(torch.tensor([-1, 2]), 4),
        ValueError,
        r"levels must be in 0\.\.3, got values in -1\.\.2",
    ),
    "dequantize-float": (
        lambda: ar.dequantize(torch.zeros(2), 4),
        TypeError,
        "integer tensor of levels, got dtype torch.float32",
    ),
    "embed_levels-levels=1": (
        lambda: ar.embed_levels(LEV, 1),
        ValueError,
        "levels must be an int >= 2, got 1",
    ),
    "embed_levels-list": (
        lambda: ar.embed_levels([1, 2], 4),
        TypeError,
        "integer tensor of levels, got list",
    ),
    "bits_per_dim-num_dims=0": (
        lambda: ar.bits_per_dim(1.0, 0),
        ValueError,
        "num_dims must be an int >= 1, got 0",
    ),
    "bits_per_dim-list": (
        lambda: ar.bits_per_dim([1.0], 4),
        TypeError,
        "nats_per_image must be a number or a tensor, got list",
    ),
    "model_bits_per_dim-batch_size=0": (
        lambda: ar.model_bits_per_dim(pcnn(), LEV, batch_size=0),
        ValueError,
        "batch_size must be an int >= 1, got 0",
    ),
    "model_bits_per_dim-labels-list": (
        lambda: ar.model_bits_per_dim(gated(num_classes=3), LEV, [0, 1]),
        TypeError,
        r"integer labels of shape \(B,\), got list",
    ),
    "model_bits_per_dim-labels-count": (
        lambda: ar.model_bits_per_dim(gated(num_classes=3), LEV, torch.tensor([0])),
        ValueError,
        "got 1 labels for 2 images",
    ),
    "nll-not-a-model": (
        lambda: ar.nll(torch.nn.Linear(1, 1), LEV),
        TypeError,
        "model must be an autoregressive model.*got Linear",
    ),
    "nll-empty-batch": (
        lambda: ar.nll(pcnn(), LEV[:0]),
        ValueError,
        r"\(B, 1, H, W\) with B, H, W >= 1, got \(0, 1, 6, 6\)",
    ),
    "pixelcnn_loss-levels=300": (
        lambda: ar.pixelcnn_loss(300),
        ValueError,
        "at most 256 levels, got levels=300",
    ),
    "pixelcnn_loss-float-above-1": (
        lambda: ar.pixelcnn_loss()(pcnn(), torch.full((2, 1, 6, 6), 2.0)),
        ValueError,
        r"float images in \[0, 1\]",
    ),
    # --- gmlib.pixelcnn ---------------------------------------------------------------
    "causal_mask-even-kernel": (
        lambda: pc.causal_mask(4, "A"),
        ValueError,
        "kernel_size must be an odd positive int, got 4",
    ),
    "causal_mask-unknown-type": (
        lambda: pc.causal_mask(3, "a"),
        ValueError,
        "mask_type must be 'A' or 'B', got 'a'",
    ),
    "masked-conv-in_channels=0": (
        lambda: pc.MaskedConv2d(0, 4, 3, mask_type="A"),
        ValueError,
        "in_channels must be an int >= 1, got 0",
    ),
    "masked-conv-out_channels=-1": (
        lambda: pc.MaskedConv2d(1, -1, 3, mask_type="A"),
        ValueError,
        "out_channels must be an int >= 1, got -1",
    ),
    "masked-conv-kernel-3-tuple": (
        lambda: pc.MaskedConv2d(1, 4, (3, 3, 3), mask_type="A"),
        ValueError,
        r"kernel_size must be an int or \(kh, kw\)",
    ),
    "masked-conv-forward-channels": (
        lambda: pc.MaskedConv2d(1, 4, 3, mask_type="A")(torch.zeros(1, 2, 5, 5)),
        ValueError,
        r"expected \(B, 1, H, W\), got \(1, 2, 5, 5\)",
    ),
    "masked-conv-forward-int": (
        lambda: pc.MaskedConv2d(1, 4, 3, mask_type="A")(torch.zeros(1, 1, 5, 5).long()),
        TypeError,
        "float tensor .*got dtype torch.int64",
    ),
    "pixelcnn-levels=1": (
        lambda: pc.PixelCNN(levels=1),
        ValueError,
        "levels must be an int >= 2, got 1",
    ),
    "pixelcnn-num_layers=0": (
        lambda: pc.PixelCNN(levels=4, num_layers=0),
        ValueError,
        "num_layers must be an int >= 1, got 0",
    ),
    "pixelcnn-even-kernel": (
        lambda: pc.PixelCNN(levels=4, kernel_size=2),
        ValueError,
        "kernel_size must be an odd positive int, got 2",
    ),
    "pixelcnn-num_classes=0": (
        lambda: pc.PixelCNN(levels=4, num_classes=0),
        ValueError,
        "num_classes must be an int >= 1, got 0",
    ),
    "gated-unknown-head": (
        lambda: pc.GatedPixelCNN(levels=4, head="softmax"),
        ValueError,
        "head must be one of 'categorical', 'logistic', got 'softmax'",
    ),
    "gated-mixtures=0": (
        lambda: pc.GatedPixelCNN(levels=4, head="logistic", mixtures=0),
        ValueError,
        "mixtures must be an int >= 1, got 0",
    ),
    "pixelcnn-forward-float": (
        lambda: pcnn()(LEV.float()),
        TypeError,
        r"integer pixel levels 0\.\.3, got dtype torch.float32.*quantize",
    ),
    "pixelcnn-forward-uint8-out-of-range": (
        lambda: pcnn()(LEV.to(U8) + 200),
        ValueError,
        r"levels must be in 0\.\.3, got values in 200\.\.203",
    ),
    "pixelcnn-forward-negative": (
        lambda: pcnn()(LEV - 4),
        ValueError,
        r"levels must be in 0\.\.3, got values in -4\.\.-1",
    ),
    "pixelcnn-forward-3-channels": (
        lambda: pcnn()(LEV.expand(2, 3, 6, 6)),
        ValueError,
        r"\(B, 1, H, W\), got \(2, 3, 6, 6\)",
    ),
    "pixelcnn-forward-bool": (
        lambda: pcnn()(LEV > 1),
        TypeError,
        "integer pixel levels.*torch.bool",
    ),
    "gated-labels-too-big": (
        lambda: gated(num_classes=3)(LEV, torch.tensor([0, 3])),
        ValueError,
        r"unknown class label: labels must be in 0\.\.2, got values in 0\.\.3",
    ),
    "gated-labels-negative": (
        lambda: gated(num_classes=3)(LEV, torch.tensor([-1, 0])),
        ValueError,
        r"labels must be in 0\.\.2, got values in -1\.\.0",
    ),
    "gated-labels-float": (
        lambda: gated(num_classes=3)(LEV, torch.tensor([0.0, 1.0])),
        TypeError,
        r"integer labels of shape \(B,\), got dtype torch.float32",
    ),
    "gated-labels-bool": (
        lambda: gated(num_classes=3)(LEV, torch.tensor([True, False])),
        TypeError,
        r"integer labels of shape \(B,\), got dtype torch.bool",
    ),
    "gated-logistic-log_prob-empty": (
        lambda: gated(head="logistic", mixtures=2).log_prob(LEV[:0]),
        ValueError,
        r"B, H, W >= 1, got \(0, 1, 6, 6\)",
    ),
    # --- gmlib.pixelrnn ---------------------------------------------------------------
    "pixelrnn-hidden_size=-1": (
        lambda: pr.PixelRNN(levels=4, hidden_size=-1),
        ValueError,
        "hidden_size must be an int >= 1, got -1",
    ),
    "pixelrnn-num_layers=0": (
        lambda: pr.PixelRNN(levels=4, num_layers=0),
        ValueError,
        "num_layers must be an int >= 1, got 0",
    ),
    "pixelrnn-forward-float": (
        lambda: rnn()(LEV.float()),
        TypeError,
        "integer pixel levels",
    ),
    # --- gmlib.logistic ---------------------------------------------------------------
    "logistic-x-float": (
        lambda: lo.discretized_logistic_log_prob(LEV.float(), M2, M2, levels=4),
        TypeError,
        "x must be an integer tensor of levels, got dtype torch.float32",
    ),
    "logistic-x-out-of-range": (
        lambda: lo.discretized_logistic_log_prob(LEV + 4, M2, M2, levels=4),
        ValueError,
        r"levels must be in 0\.\.3, got values in 4\.\.7",
    ),
    "logistic-means-list": (
        lambda: lo.discretized_logistic_log_prob(LEV, [0.0], [0.0], levels=4),
        TypeError,
        "means must be a float tensor, got list",
    ),
    "logistic-means-batch": (
        lambda: lo.discretized_logistic_log_prob(LEV, M2[:1], M2[:1], levels=4),
        ValueError,
        r"x \(2, 1, 6, 6\) and means \(1, 2, 6, 6\) must have the same B, H and W",
    ),
    "logistic-K=0": (
        lambda: lo.discretized_logistic_log_prob(LEV, M2[:, :0], M2[:, :0], levels=4),
        ValueError,
        r"\(B, K, H, W\) with K >= 1",
    ),
    "logistic-weights-list": (
        lambda: lo.discretized_logistic_log_prob(
            LEV, M2, M2, levels=4, logit_weights=[0.0]
        ),
        TypeError,
        "logit_weights must be a float tensor, got list",
    ),
    "split_params-3K=0": (
        lambda: lo.split_params(P6[:, :0]),
        ValueError,
        r"\(B, 3K, H, W\), got \(2, 0, 6, 6\)",
    ),
    "mixture_log_probs-int": (
        lambda: lo.mixture_log_probs(P6.long(), levels=4),
        TypeError,
        "params must be a float tensor, got dtype torch.int64",
    ),
    "mixture_log_prob-batch": (
        lambda: lo.mixture_log_prob(LEV, torch.zeros(3, 6, 6, 6), levels=4),
        ValueError,
        "must have the same B, H and W",
    ),
    # --- gmlib.gaussians and gmlib.vae ------------------------------------------------
    "reparameterize-list": (
        lambda: ga.reparameterize([0.0], [0.0]),
        TypeError,
        "mu must be a float tensor, got list",
    ),
    "kl_normal-shapes": (
        lambda: ga.kl_normal(MU, torch.zeros(2, 4)),
        ValueError,
        r"same shape \(\.\.\., k\), got \(2, 3\) and \(2, 4\)",
    ),
    "log_normal-list": (
        lambda: ga.log_normal([0.0]),
        TypeError,
        "z must be a float tensor, got list",
    ),
    "log_normal-int": (
        lambda: ga.log_normal(torch.zeros(2, dtype=L)),
        TypeError,
        "z must be a float tensor, got dtype torch.int64",
    ),
    "log_normal-mu-shape": (
        lambda: ga.log_normal(MU, torch.zeros(2, 4)),
        ValueError,
        r"mu \(2, 4\) does not broadcast against z \(2, 3\)",
    ),
    "vae-image_shape-2d": (
        lambda: vae.ConvVAE(image_shape=(28, 28)),
        ValueError,
        r"image_shape must be \(C, H, W\)",
    ),
    "vae-elbo-beta-negative": (
        lambda: vae.elbo(mvae(), BIN, beta=-1),
        ValueError,
        "beta must be a finite number >= 0, got -1",
    ),
    "vae-elbo-beta-str": (
        lambda: vae.elbo(mvae(), BIN, beta="1"),
        ValueError,
        "beta must be a finite number >= 0, got '1'",
    ),
    "vae-elbo-not-a-vae": (
        lambda: vae.elbo(mlp(), BIN),
        TypeError,
        "model must be a VAE.*got MLPAutoencoder",
    ),
    "vae-elbo-nan-image": (
        lambda: vae.elbo(mvae(), torch.full((2, 1, 8, 8), NAN)),
        ValueError,
        "needs binary images",
    ),
    "vae-loss-empty-batch": (
        lambda: vae.loss(mvae(), BIN[:0]),
        ValueError,
        r"at least one image, got \(0, 1, 8, 8\)",
    ),
    "vae-binarize-inf": (
        lambda: vae.binarize(torch.tensor([INF])),
        ValueError,
        r"expected values in \[0, 1\], got \[inf, inf\]",
    ),
    "vae-decoder_log_prob-latent": (
        lambda: vae.decoder_log_prob(mvae(), BIN, torch.zeros(2, 5)),
        ValueError,
        r"z must be \(\.\.\., B, k\) = \(\.\.\., 2, 2\).*got \(2, 5\)",
    ),
    "vae-decoder_log_prob-batch": (
        lambda: vae.decoder_log_prob(mvae(), BIN[:1], torch.zeros(3, 2)),
        ValueError,
        r"z must be \(\.\.\., B, k\) = \(\.\.\., 1, 2\)",
    ),
    "vae-decoder_log_prob-int-codes": (
        lambda: vae.decoder_log_prob(mvae(), BIN, torch.zeros(2, 2, dtype=L)),
        TypeError,
        "z must be a float tensor, got dtype torch.int64",
    ),
    "vae-decoder_log_prob-uint8": (
        lambda: vae.decoder_log_prob(mvae(), BIN.to(U8), torch.zeros(2, 2)),
        TypeError,
        "float images.*to_float",
    ),
    "vae-sample-n=2.0": (
        lambda: mvae().sample(2.0),
        ValueError,
        "n must be an int >= 1, got 2.0",
    ),
    # --- gmlib.linear_gaussian --------------------------------------------------------
    "lg-W-list": (
        lambda: lg.LinearGaussian([[1.0]], [0.0], 1.0),
        TypeError,
        "W must be a float tensor, got list",
    ),
    "lg-W-int": (
        lambda: lg.LinearGaussian(torch.zeros(4, 2, dtype=L), torch.zeros(4), 1.0),
        TypeError,
        "W must be a float tensor, got dtype torch.int64",
    ),
    "lg-W-b-dtypes": (
        lambda: lg.LinearGaussian(torch.zeros(4, 2), f64(4), 1.0),
        TypeError,
        "W and b must have one dtype, got torch.float32 and torch.float64",
    ),
    "lg-W-nan": (
        lambda: lg.LinearGaussian(torch.full((4, 2), NAN), torch.zeros(4), 1.0),
        ValueError,
        "W and b must be finite",
    ),
    "lg-k=0": (
        lambda: lg.LinearGaussian(torch.zeros(4, 0), torch.zeros(4), 1.0),
        ValueError,
        r"got \(4, 0\) and \(4,\) \(D and k must be >= 1\)",
    ),
    "lg-sigma2-inf": (
        lambda: lg.LinearGaussian(torch.zeros(4, 2), torch.zeros(4), INF),
        ValueError,
        "sigma2 must be > 0, got inf",
    ),
    "lg-sigma2-str": (
        lambda: lg.LinearGaussian(torch.zeros(4, 2), torch.zeros(4), "1"),
        ValueError,
        "sigma2 must be > 0, got '1'",
    ),
    "lg-random-k=-1": (
        lambda: lg.LinearGaussian.random(4, -1),
        ValueError,
        "k must be an int >= 1, got -1",
    ),
    "lg-random-int-dtype": (
        lambda: lg.LinearGaussian.random(4, 2, dtype=L),
        TypeError,
        "dtype must be a float dtype, got torch.int64",
    ),
    "lg-sample-n=-1": (
        lambda: lgm().sample(-1),
        ValueError,
        "n must be an int >= 1, got -1",
    ),
    "lg-log_evidence-D": (
        lambda: lgm().log_evidence(f64(3, 5)),
        ValueError,
        r"x must be \(\.\.\., D\) = \(\.\.\., 4\), got \(3, 5\)",
    ),
    "lg-posterior-D": (
        lambda: lgm().posterior(f64(3, 5)),
        ValueError,
        r"x must be \(\.\.\., D\) = \(\.\.\., 4\)",
    ),
    "lg-log_likelihood-k": (
        lambda: lgm().log_likelihood(f64(3, 4), f64(3, 5)),
        ValueError,
        r"z must be \(\.\.\., k\) = \(\.\.\., 2\), got \(3, 5\)",
    ),
    "lg-elbo-k": (
        lambda: lgm().elbo(f64(3, 4), f64(3, 3), f64(3, 3)),
        ValueError,
        r"mu must be \(\.\.\., k\) = \(\.\.\., 2\), got \(3, 3\)",
    ),
    "lg-kl_to_posterior-logvar": (
        lambda: lgm().kl_to_posterior(f64(3, 4), f64(3, 2), f64(3, 3)),
        ValueError,
        r"logvar must be \(\.\.\., k\)",
    ),
    # --- gmlib.unet -------------------------------------------------------------------
    "unet-image_channels=0": (
        lambda: un.UNet(image_channels=0),
        ValueError,
        "image_channels must be an int >= 1, got 0",
    ),
    "unet-num_classes=0": (
        lambda: un.UNet(num_classes=0),
        ValueError,
        "num_classes must be an int >= 1, got 0",
    ),
    "unet-num_classes=-1": (
        lambda: un.UNet(num_classes=-1),
        ValueError,
        "num_classes must be an int >= 1, got -1",
    ),
    "unet-forward-list": (
        lambda: unet()([[0.0]], T2[:1]),
        TypeError,
        r"float images \(B, C, H, W\), got list",
    ),
    "unet-forward-uint8": (
        lambda: unet()(torch.zeros(1, 1, 8, 8, dtype=U8), T2[:1]),
        TypeError,
        "float images.*got dtype torch.uint8",
    ),
    "unet-forward-channels": (
        lambda: unet()(torch.zeros(1, 3, 8, 8), T2[:1]),
        ValueError,
        r"expected images \(B, 1, H, W\), got \(1, 3, 8, 8\)",
    ),
    "unet-forward-too-small": (
        lambda: unet()(torch.zeros(1, 1, 4, 4), T2[:1]),
        ValueError,
        "one image of 4 x 4 is too small for this U-Net",
    ),
    "unet-forward-t-count": (
        lambda: unet()(torch.zeros(2, 1, 8, 8), torch.zeros(3, dtype=L)),
        ValueError,
        "got 3 timesteps for 2 inputs",
    ),
    "unet-forward-t-0d": (
        lambda: unet()(torch.zeros(2, 1, 8, 8), torch.tensor(0)),
        TypeError,
        r"t must be a \(B,\) tensor of timesteps, got dtype torch.int64, shape \(\)",
    ),
    "unet-forward-t-int": (
        lambda: unet()(torch.zeros(2, 1, 8, 8), 0),
        TypeError,
        r"t must be a \(B,\) tensor of timesteps, got int",
    ),
    "unet-forward-label-too-big": (
        lambda: unet(num_classes=3)(torch.zeros(2, 1, 8, 8), T2, torch.tensor([0, 4])),
        ValueError,
        r"unknown class label: y must be in 0\.\.3, got values in 0\.\.4",
    ),
    "unet-forward-label-negative": (
        lambda: unet(num_classes=3)(torch.zeros(2, 1, 8, 8), T2, torch.tensor([-1, 0])),
        ValueError,
        r"y must be in 0\.\.3, got values in -1\.\.0",
    ),
    "unet-forward-label-float": (
        lambda: unet(num_classes=3)(torch.zeros(2, 1, 8, 8), T2, torch.zeros(2)),
        TypeError,
        r"y must be integer labels of shape \(B,\), got dtype torch.float32",
    ),
    "unet-forward-label-count": (
        lambda: unet(num_classes=3)(torch.zeros(2, 1, 8, 8), T2, torch.tensor([0])),
        ValueError,
        "got 1 labels for 2 images",
    ),
    "mlp-denoiser-forward-list": (
        lambda: un.MLPDenoiser(hidden=8)([[0.0, 0.0]], T2[:1]),
        TypeError,
        r"float points \(B, 2\), got list",
    ),
    "mlp-denoiser-forward-t-count": (
        lambda: un.MLPDenoiser(hidden=8)(torch.zeros(2, 2), torch.zeros(3, dtype=L)),
        ValueError,
        "got 3 timesteps for 2 inputs",
    ),
    "timestep_embedding-dim=0": (
        lambda: un.timestep_embedding(T2, 0),
        ValueError,
        "dim must be an int >= 1, got 0",
    ),
    "timestep_embedding-2d": (
        lambda: un.timestep_embedding(torch.zeros(2, 2), 8),
        TypeError,
        r"t must be a \(B,\) tensor of timesteps, got dtype torch.float32, shape",
    ),
    # --- gmlib.diffusion --------------------------------------------------------------
    "schedule-betas-str": (
        lambda: df.Schedule("linear"),
        TypeError,
        r"betas must be a 1-D tensor of numbers in \(0, 1\), got str",
    ),
    "schedule-betas-outside": (
        lambda: df.Schedule(torch.tensor([0.5, 1.5])),
        ValueError,
        r"every beta must lie in \(0, 1\)",
    ),
    "schedule-linear-T=0": (
        lambda: df.Schedule.linear(0),
        ValueError,
        "T must be an int >= 1, got 0",
    ),
    "schedule-linear-beta_start-nan": (
        lambda: df.Schedule.linear(100, beta_start=NAN),
        ValueError,
        "beta_start must be > 0, got nan",
    ),
    "schedule-cosine-s-negative": (
        lambda: df.Schedule.cosine(10, s=-1),
        ValueError,
        "s must be a finite number >= 0, got -1",
    ),
    "q_sample-t-too-big": (
        lambda: S10.q_sample(torch.zeros(2, 1, 4, 4), torch.tensor([0, 10])),
        ValueError,
        r"timesteps must lie in 0\.\.9, got 0 to 10",
    ),
    "q_sample-t-negative": (
        lambda: S10.q_sample(torch.zeros(2, 1, 4, 4), torch.tensor([-1, 0])),
        ValueError,
        r"timesteps must lie in 0\.\.9, got -1 to 0",
    ),
    "q_sample-empty-batch": (
        lambda: S10.q_sample(torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=L)),
        ValueError,
        r"x0 must be \(B, \.\.\.\) with B >= 1",
    ),
    "q_sample-noise-list": (
        lambda: S10.q_sample(torch.zeros(2, 1, 4, 4), T2, [0.0]),
        TypeError,
        "noise must be a float tensor, got list",
    ),
    "q_step-noise-int": (
        lambda: S10.q_step(torch.zeros(2, 1, 4, 4), T2, torch.zeros(2, 1, 4, 4).long()),
        TypeError,
        "noise must be a float tensor, got dtype torch.int64",
    ),
    "posterior-x0-int": (
        lambda: S10.posterior(
            torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4).long(), T2
        ),
        TypeError,
        "x0 must be a float tensor",
    ),
    "predict_x0-eps-shape": (
        lambda: S10.predict_x0(torch.zeros(2, 1, 4, 4), T2, torch.zeros(2, 1, 4, 5)),
        ValueError,
        r"eps \(2, 1, 4, 5\) must match x_t \(2, 1, 4, 4\)",
    ),
    "predict_x0-x-int": (
        lambda: S10.predict_x0(torch.zeros(2, 1, 4, 4).long(), T2, torch.zeros(2)),
        TypeError,
        "x_t must be a float tensor",
    ),
    "diffusion-loss-schedule-name": (
        lambda: df.loss(eps0, "cosine", torch.zeros(2, 1, 4, 4)),
        TypeError,
        r"schedule must be a gm.diffusion.Schedule .*got str",
    ),
    "diffusion-loss-p_uncond=2": (
        lambda: df.loss(eps0, S10, torch.zeros(2, 1, 4, 4), T2, p_uncond=2.0),
        ValueError,
        r"p_uncond must lie in \[0, 1\], got 2.0",
    ),
    "diffusion-loss-p_uncond-nan": (
        lambda: df.loss(eps0, S10, torch.zeros(2, 1, 4, 4), T2, p_uncond=NAN),
        ValueError,
        r"p_uncond must lie in \[0, 1\], got nan",
    ),
    "diffusion-loss-null_class=-1": (
        lambda: df.loss(
            eps0, S10, torch.zeros(2, 1, 4, 4), T2, p_uncond=1.0, null_class=-1
        ),
        ValueError,
        "null_class must be an int >= 0, got -1",
    ),
    "diffusion-loss-labels-float": (
        lambda: df.loss(eps0, S10, torch.zeros(2, 1, 4, 4), torch.zeros(2)),
        TypeError,
        r"y must be integer labels of shape \(B,\), got dtype torch.float32",
    ),
    "diffusion-loss-labels-too-big": (
        lambda: df.loss(unet(num_classes=3), S10, torch.zeros(2, 1, 8, 8), T2 + 3),
        ValueError,
        r"unknown class label: y must be in 0\.\.3, got values in 3\.\.4",
    ),
    "guided_eps-scale-nan": (
        lambda: df.guided_eps(eps0, X8, T2, T2, scale=NAN, null_class=3),
        ValueError,
        "scale must be a finite number, got nan",
    ),
    "guided_eps-labels-list": (
        lambda: df.guided_eps(eps0, X8, T2, [0, 1], scale=2.0, null_class=3),
        TypeError,
        "y must be integer labels of shape",
    ),
    "ddpm-schedule-name": (
        lambda: df.ddpm_sample(eps0, "linear", torch.zeros(2, 1, 4, 4)),
        TypeError,
        "schedule must be a gm.diffusion.Schedule",
    ),
    "ddpm-empty-batch": (
        lambda: df.ddpm_sample(eps0, S10, torch.zeros(0, 1, 4, 4)),
        ValueError,
        r"noise must be \(B, \.\.\.\) with B >= 1",
    ),
    "ddpm-labels-count": (
        lambda: df.ddpm_sample(eps0, S10, torch.zeros(2, 1, 4, 4), y=T2[:1]),
        ValueError,
        "got 1 labels for 2 images",
    ),
    "ddpm-labels-beyond-null": (
        lambda: df.ddpm_sample(
            unet(num_classes=3), S10, torch.zeros(2, 1, 8, 8), y=T2 + 3, null_class=3
        ),
        ValueError,
        r"y must be in 0\.\.3, got values in 3\.\.4",
    ),
    "ddpm-null_class-beyond": (
        lambda: df.ddpm_sample(
            unet(num_classes=3), S10, torch.zeros(2, 1, 8, 8), y=T2, null_class=4
        ),
        ValueError,
        r"null_class must be in 0\.\.3, got 4",
    ),
    "ddim-eta-str": (
        lambda: df.ddim_sample(eps0, S10, torch.zeros(2, 1, 4, 4), eta="0"),
        ValueError,
        r"eta must lie in \[0, 1\], got '0'",
    ),
    "ddim-steps=True": (
        lambda: df.ddim_sample(eps0, S10, torch.zeros(2, 1, 4, 4), steps=True),
        ValueError,
        "steps must be an int >= 1, got True",
    ),
    "ddim_invert-scale-str": (
        lambda: df.ddim_invert(eps0, S10, X8, y=T2, scale="2", null_class=3),
        ValueError,
        "scale must be a finite number, got '2'",
    ),
    # --- gmlib.diffusion_elbo ---------------------------------------------------------
    "nll_bound-schedule-name": (
        lambda: de.nll_bound(eps0, "cosine", IMG_U8),
        TypeError,
        "schedule must be a gm.diffusion.Schedule, got str",
    ),
    "nll_bound-int64-images": (
        lambda: de.nll_bound(eps0, S10, IMG_U8.long()),
        TypeError,
        r"images must be uint8 \(0\.\.255\) images, got torch.int64",
    ),
    "nll_bound-float-labels": (
        lambda: de.nll_bound(eps0, S10, IMG_U8, torch.zeros(2)),
        TypeError,
        "y must be integer labels, got dtype torch.float32",
    ),
    "nll_bound-labels-too-big": (
        lambda: de.nll_bound(
            unet(num_classes=3), S10, torch.zeros(2, 1, 8, 8, dtype=U8), T2 + 3
        ),
        ValueError,
        r"y must be in 0\.\.3, got values in 3\.\.4",
    ),
    "nll_bound-T=1": (
        lambda: de.nll_bound(eps0, df.Schedule.cosine(1), IMG_U8),
        ValueError,
        "T >= 2 steps",
    ),
    "nll_bound-not-callable": (
        lambda: de.nll_bound("unet", S10, IMG_U8),
        TypeError,
        "model must be a noise predictor, got str",
    ),
    "discretized_gaussian-x-list": (
        lambda: de.discretized_gaussian_log_prob([0.0], torch.zeros(1), 1.0),
        TypeError,
        "x must be a float tensor, got list",
    ),
    "discretized_gaussian-std=0": (
        lambda: de.discretized_gaussian_log_prob(torch.zeros(1), torch.zeros(1), 0.0),
        ValueError,
        "std must be > 0, got 0.0",
    ),
    "discretized_gaussian-std-tensor-negative": (
        lambda: de.discretized_gaussian_log_prob(
            torch.zeros(2), torch.zeros(2), torch.tensor([1.0, -1.0])
        ),
        ValueError,
        "std must be finite and > 0",
    ),
    "discretized_gaussian-x-outside": (
        lambda: de.discretized_gaussian_log_prob(
            torch.tensor([3.0]), torch.zeros(1), 1.0
        ),
        ValueError,
        r"x must lie in \[-1, 1\], got values from 3 to 3",
    ),
    "discretized_gaussian-shapes": (
        lambda: de.discretized_gaussian_log_prob(torch.zeros(3), torch.zeros(2), 1.0),
        ValueError,
        r"x \(3,\), mean \(2,\) and std must broadcast together",
    ),
    # --- gmlib.checks -----------------------------------------------------------------
    "checks-positive_int-minimum": (
        lambda: checks.positive_int(1, "levels", minimum=2),
        ValueError,
        "levels must be an int >= 2, got 1",
    ),
    "checks-one_of": (
        lambda: checks.one_of("x", "kind", ("a", "b")),
        ValueError,
        "kind must be one of 'a', 'b', got 'x'",
    ),
    "checks-within-nan": (
        lambda: checks.within(torch.tensor([0.5, NAN]), "x", 0, 1),
        ValueError,
        r"x must lie in \[0, 1\], got values from nan to nan",
    ),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_gets_one_clear_error_from_gmlib(case):
    call, exception, pattern = BAD[case]
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert info.type is exception, (info.type, info.value)
    assert info.match(pattern)
    # raised by gmlib's own check, not passed through from inside torch or numpy
    raised_in = Path(info.traceback[-1].path)
    assert raised_in.parent == GMLIB, raised_in


def _empty(shape):
    return lambda out: tuple(out.shape) == shape


def _finite(shape):
    return lambda out: tuple(out.shape) == shape and bool(torch.isfinite(out).all())


# id -> (call, check of the result): edge cases that are accepted, and what they give
WORKS = {
    "ae-forward-empty-batch": (lambda: mlp()(X8[:0]), _empty((0, 1, 8, 8))),
    "conv-ae-forward-empty-batch": (lambda: conv()(X8[:0]), _empty((0, 1, 8, 8))),
    "ae-forward-float64-input": (
        lambda: mlp()(X8.double()),
        lambda out: out.dtype == torch.float32 and out.shape == X8.shape,
    ),
    "ae-mlp-no-hidden-layers": (
        lambda: ae.MLPAutoencoder(image_shape=(1, 8, 8), hidden_dims=(), latent_dim=2)(
            X8
        ),
        _finite((2, 1, 8, 8)),
    ),
    "quantize-empty": (lambda: ar.quantize(X8[:0], 4), _empty((0, 1, 8, 8))),
    "quantize-uint8-255": (
        lambda: ar.quantize(torch.tensor([0, 127, 128, 255], dtype=U8), 2),
        lambda out: out.tolist() == [0, 0, 1, 1],
    ),
    "quantize-bfloat16": (
        lambda: ar.quantize(torch.tensor([0.0, 1.0]).bfloat16(), 256),
        lambda out: out.tolist() == [0, 255],
    ),
    "dequantize-empty": (
        lambda: ar.dequantize(torch.zeros(0, dtype=L), 4),
        _empty((0,)),
    ),
    "pixelcnn-uint8-levels": (lambda: pcnn()(LEV.to(U8)), _finite((2, 4, 6, 6))),
    "pixelcnn-forward_embedded-empty": (
        lambda: pcnn().forward_embedded(torch.zeros(0, 1, 6, 6)),
        _empty((0, 4, 6, 6)),
    ),
    "gated-uint8-labels": (
        lambda: gated(num_classes=3)(LEV, torch.tensor([0, 2], dtype=U8)),
        _finite((2, 4, 6, 6)),
    ),
    "pixelcnn-float64-model": (
        lambda: pcnn().double().log_prob(LEV),
        lambda out: out.dtype == torch.float64 and bool((out < 0).all()),
    ),
    "gated-logistic-float64-model": (
        lambda: gated(head="logistic", mixtures=2).double().log_prob(LEV),
        lambda out: out.dtype == torch.float64 and bool((out < 0).all()),
    ),
    "binarize-empty": (lambda: vae.binarize(X8[:0]), _empty((0, 1, 8, 8))),
    "vae-elbo-empty-batch": (
        lambda: vae.elbo(mvae(), BIN[:0])["elbo"],
        _empty((0,)),
    ),
    "vae-iwae-empty-batch": (
        lambda: vae.iwae_bound(mvae(), BIN[:0], k=2),
        _empty((0,)),
    ),
    "vae-elbo-float64-images": (
        lambda: vae.elbo(mvae(), BIN.double())["elbo"],
        lambda out: out.dtype == torch.float64 and bool((out < 0).all()),
    ),
    "reparameterize-empty": (
        lambda: ga.reparameterize(MU[:0], MU[:0]),
        _empty((0, 3)),
    ),
    "lg-sigma2-0d-tensor": (
        lambda: lg.LinearGaussian(f64(4, 2), f64(4), torch.tensor(0.5)).sigma2,
        lambda out: out == 0.5,
    ),
    "logistic-empty-batch": (
        lambda: lo.discretized_logistic_log_prob(LEV[:0], M2[:0], M2[:0], levels=4),
        _empty((0, 1, 6, 6)),
    ),
    "unet-empty-batch": (
        lambda: unet()(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=L)),
        _empty((0, 1, 8, 8)),
    ),
    "unet-odd-channels": (
        lambda: un.UNet(channels=3)(torch.zeros(1, 1, 8, 8), T2[:1]),
        _finite((1, 1, 8, 8)),
    ),
    "unet-null-class-label": (
        lambda: unet(num_classes=3)(torch.zeros(2, 1, 8, 8), T2, torch.tensor([3, 3])),
        _finite((2, 1, 8, 8)),
    ),
    "unet-float64-input": (
        lambda: unet()(torch.zeros(2, 1, 8, 8, dtype=torch.float64), T2),
        _finite((2, 1, 8, 8)),
    ),
    "mlp-denoiser-odd-hidden": (
        lambda: un.MLPDenoiser(hidden=7)(torch.zeros(2, 2), T2),
        _finite((2, 2)),
    ),
    "timestep_embedding-odd-dim": (
        lambda: un.timestep_embedding(T2, 7),
        lambda out: out.shape == (2, 7) and bool((out[:, -1] == 0).all()),
    ),
    "schedule-from-list": (
        lambda: df.Schedule([0.1, 0.2]).alpha_bars,
        lambda out: torch.allclose(out, torch.tensor([0.9, 0.72], dtype=out.dtype)),
    ),
    "ddim-labels-null-class": (
        lambda: df.ddim_sample(
            unet(num_classes=3).eval(),
            S10,
            torch.zeros(2, 1, 8, 8),
            steps=2,
            y=torch.tensor([3, 0]),
            null_class=3,
            scale=2.0,
        ),
        _finite((2, 1, 8, 8)),
    ),
}


@pytest.mark.parametrize("case", list(WORKS), ids=list(WORKS))
def test_edge_input_that_is_accepted_gives_the_right_result(case):
    call, check = WORKS[case]
    out = call()
    assert check(out), out


def test_the_tables_are_large_and_their_ids_readable():
    assert len(BAD) >= 60
    for name in [*BAD, *WORKS]:
        assert name == name.strip() and " " not in name


def test_checks_accept_what_they_should():
    assert checks.positive_int(3, "n") == 3
    assert checks.odd_size(5, "k") == 5
    assert checks.positive_ints([2, 3], "sizes") == (2, 3)
    assert checks.image_shape([1, 8, 8]) == (1, 8, 8)
    assert checks.finite_number(0, "beta", minimum=0) == 0.0
    assert checks.finite_number(1, "eta", minimum=0, maximum=1) == 1.0
    assert checks.one_of("mse", "kind", ("mse", "bce")) == "mse"
    assert checks.describe(torch.zeros(2, 3, dtype=L)) == (
        "dtype torch.int64, shape (2, 3)"
    )
    assert checks.describe([1]) == "list"
    y = torch.tensor([0, 2])
    assert checks.labels(y, batch=2, num_classes=3) is y
    assert checks.within(torch.tensor([0.0, 1.0]), "x", 0, 1).shape == (2,)
    assert math.isclose(checks.finite_number(2.5, "s"), 2.5)
