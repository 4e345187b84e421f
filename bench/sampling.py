"""Sampling speed: the naive sampler against the exact fast one, same samples.

``sample_naive`` runs the whole model on the whole image for each of the H * W pixels;
``sample_fast`` runs, for a gated PixelCNN, the vertical stack once per row and the
horizontal stack on a few columns of one row per pixel. Both get the same pre-drawn
uniforms, so their images must be identical; the script checks that, prints the wall
time of each (the fast one as the median of ``--repeats`` runs after a warm-up, the slow
one once) and the speed-up. The model is randomly initialized (the speed does not depend
on training) unless ``--checkpoint`` gives a file saved by ``gm.train_or_load`` (or a
plain state dict) for the same configuration.

    .venv/bin/python bench/sampling.py [--model gated] [--levels 4] [--channels 16]
        [--layers 6] [--classes 10] [--batch-size 16] [--image-size 28] [--repeats 3]
        [--checkpoint PATH]

The defaults are chapter 02's cpu-budget model: a class-conditional gated PixelCNN with
4 levels, 16 channels and 6 layers (``--classes 0`` drops the classes).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import gmlib as gm
from gmlib import pixelcnn, pixelrnn, sampling


def build(args: argparse.Namespace) -> pixelcnn.AutoregressiveModel:
    torch.manual_seed(0)
    classes = args.classes or None
    if args.model in ("gated", "pixelcnn"):
        cnn = pixelcnn.GatedPixelCNN if args.model == "gated" else pixelcnn.PixelCNN
        return cnn(
            levels=args.levels,
            channels=args.channels,
            num_layers=args.layers,
            num_classes=classes,
        )
    return pixelrnn.PixelRNN(
        levels=args.levels, hidden_size=args.channels, num_classes=classes
    )


def load_weights(model: torch.nn.Module, path: str) -> None:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise SystemExit(f"{path}: neither a gmlib checkpoint nor a state dict")
    model.load_state_dict(state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", choices=("gated", "pixelcnn", "rnn"), default="gated"
    )
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument(
        "--channels", type=int, default=16, help="(hidden size for --model rnn)"
    )
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument(
        "--classes", type=int, default=10, help="class-conditional with N classes"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of the fast sampler (median)"
    )
    parser.add_argument("--checkpoint", default=None, help="weights to load")
    args = parser.parse_args()

    print(gm.runtime.summary())
    model = build(args)
    if args.checkpoint:
        load_weights(model, args.checkpoint)
    model = model.to(gm.device()).eval()
    size = (args.image_size, args.image_size)
    num_params = sum(p.numel() for p in model.parameters())
    print(
        f"model: {type(model).__name__}, levels {args.levels}, channels "
        f"{args.channels}, layers {args.layers}, classes {args.classes or 'none'}, "
        f"{num_params:,} parameters, "
        f"{'weights from ' + args.checkpoint if args.checkpoint else 'random weights'}"
    )
    print(f"batch: {args.batch_size} samples of {size[0]} x {size[1]}")
    y = torch.arange(args.batch_size) % args.classes if args.classes else None

    u = torch.rand(
        args.batch_size, 1, *size, generator=torch.Generator().manual_seed(0)
    )
    warm = dict(num_samples=args.batch_size, image_size=(8, 8), y=y)
    sampling.sample_fast(model, **warm)  # warm-up: allocator, kernels
    sampling.sample_naive(model, **warm)

    fast_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        fast, fast_logits = sampling.sample_fast(
            model, uniforms=u, y=y, return_logits=True
        )
        fast_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    naive, naive_logits = sampling.sample_naive(
        model, uniforms=u, y=y, return_logits=True
    )
    naive_time = time.perf_counter() - start

    fast_time = statistics.median(fast_times)
    pixels = size[0] * size[1]
    differ = int((fast != naive).sum())
    gap = float((fast_logits - naive_logits).abs().max())
    print(
        f"naive: {naive_time:8.2f} s  ({1000 * naive_time / pixels:.1f} ms per pixel, "
        f"{pixels} full forward passes)"
    )
    print(
        f"fast : {fast_time:8.2f} s  ({1000 * fast_time / pixels:.2f} ms per pixel; "
        f"runs: {', '.join(f'{t:.2f}' for t in fast_times)})"
    )
    print(f"speed-up: {naive_time / fast_time:.1f}x")
    print(
        f"identical images: {'yes' if differ == 0 else f'NO, {differ} pixels differ'}"
        f" (largest logit difference {gap:.1e})"
    )


if __name__ == "__main__":
    main()
