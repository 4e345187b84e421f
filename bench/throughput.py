"""Training throughput: gmlib's fit() against a DataLoader + ToTensor loop.

Both train the same MLP VAE (784-400-20, as in pytorch/examples' vae) on the same
Fashion-MNIST training images, with the same batch size, optimizer and loss, for one
epoch each, in this one process; the script prints images/second for each and their
ratio.

    .venv/bin/python bench/throughput.py [--limit N] [--batch-size 128] [--epochs 1]
                                         [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import gmlib as gm


class MLPVAE(nn.Module):
    """The MLP VAE of pytorch/examples.

    x (784) -> 400 -> (mu, logvar) (20) -> 400 -> 784.
    """

    def __init__(
        self, *, input_dim: int = 784, hidden_dim: int = 400, latent_dim: int = 20
    ):
        super().__init__()
        self.encoder = nn.Linear(input_dim, hidden_dim)
        self.to_mu = nn.Linear(hidden_dim, latent_dim)
        self.to_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, input_dim),
        )

    def forward(self, x):
        h = F.relu(self.encoder(x.flatten(1)))  # (B, 400)
        mu, logvar = self.to_mu(h), self.to_logvar(h)  # (B, 20) each
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterization
        return self.decoder(z), mu, logvar  # logits (B, 784)


def vae_loss(model, x):
    """Negative ELBO summed over the batch.

    BCE reconstruction + KL(q(z|x) || N(0, I)).
    """
    logits, mu, logvar = model(x)
    bce = F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kl


def dataloader_loop(
    images_root: Path, *, batch_size: int, epochs: int, limit: int | None, seed: int
) -> tuple[float, int]:
    """The loop of pytorch/examples.

    A torchvision dataset, ToTensor per sample, a DataLoader.
    """
    from torchvision import datasets, transforms

    dataset = datasets.FashionMNIST(
        str(images_root), train=True, download=False, transform=transforms.ToTensor()
    )
    if limit:
        dataset = torch.utils.data.Subset(dataset, range(limit))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
    torch.manual_seed(seed)
    model = MLPVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    seen, start = 0, time.perf_counter()
    for _ in range(epochs):
        train_loss = 0.0
        for x, _ in loader:
            optimizer.zero_grad()
            loss = vae_loss(model, x)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
            seen += len(x)
    return time.perf_counter() - start, seen


def torchvision_root(tmp: Path) -> Path:
    """torchvision's FashionMNIST layout (<root>/FashionMNIST/raw/), linked to gmlib's
    files."""
    gm.load("fashion-mnist", split="train", limit=1)  # makes sure the cache has them
    raw = gm.data.cache_dir() / "fashion-mnist" / "raw"
    target = tmp / "FashionMNIST" / "raw"
    target.mkdir(parents=True)
    for path in raw.iterdir():
        os.symlink(path, target / path.name)
    return tmp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--limit", type=int, default=None, help="use the first N training images"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="alternate the loops this many times and report medians "
        "(the machine may be shared and noisy)",
    )
    args = parser.parse_args()

    print(gm.runtime.summary())
    images = gm.load("fashion-mnist", split="train", limit=args.limit).images
    print(
        f"data: {len(images)} Fashion-MNIST images, batch size {args.batch_size}, "
        f"{args.epochs} epoch(s), Adam lr 1e-3, MLP VAE 784-400-20, CPU, "
        f"{args.repeats} alternating repeat(s) after a warm-up"
    )

    def run_fit(optimizer_kind: str, data: torch.Tensor) -> gm.History:
        torch.manual_seed(0)
        model = MLPVAE()
        # None: fit's default, fused Adam
        optimizer = (
            torch.optim.Adam(model.parameters(), lr=1e-3)
            if optimizer_kind == "for-each"
            else None
        )
        return gm.fit(
            model,
            data,
            loss_fn=vae_loss,
            num_epochs=args.epochs,
            optimizer=optimizer,
            batch_size=args.batch_size,
            lr=1e-3,
            device="cpu",
            progress=False,
            seed=0,
        )

    rates: dict[str, list[float]] = {"fit": [], "for-each": [], "loader": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(Path(tmp))
        run_fit("fused", images[:2048])  # warm-up: allocators, kernels
        dataloader_loop(root, batch_size=args.batch_size, epochs=1, limit=2048, seed=0)
        for _ in range(args.repeats):
            history = run_fit("fused", images)
            rates["fit"].append(history.images_per_second)
            rates["for-each"].append(run_fit("for-each", images).images_per_second)
            seconds, seen = dataloader_loop(
                root,
                batch_size=args.batch_size,
                epochs=args.epochs,
                limit=args.limit,
                seed=0,
            )
            rates["loader"].append(seen / seconds)
    fit_rate, foreach_rate, loader_rate = (
        statistics.median(rates[k]) for k in ("fit", "for-each", "loader")
    )
    ratios = [a / b for a, b in zip(rates["fit"], rates["loader"])]

    def spread(key: str) -> str:
        return ", ".join(f"{r:.0f}" for r in rates[key])

    print(
        f"gm.fit                          : {fit_rate:8.0f} images/s  "
        f"(runs: {spread('fit')}; "
        f"final loss {history.loss[-1] / args.batch_size:.1f} nats/image)"
    )
    print(
        f"gm.fit with for-each Adam       : {foreach_rate:8.0f} images/s  "
        f"(runs: {spread('for-each')})"
    )
    print(
        f"DataLoader + ToTensor (examples): {loader_rate:8.0f} images/s  "
        f"(runs: {spread('loader')})"
    )
    print(
        f"ratio gm.fit / DataLoader loop  : {statistics.median(ratios):.2f}x median "
        f"(runs: {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"data path alone, same Adam: {foreach_rate / loader_rate:.2f}x)"
    )


if __name__ == "__main__":
    main()
