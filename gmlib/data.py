"""Datasets as uint8 tensors, from the first source in a chain that has them.

``load("fashion-mnist", split="train")`` returns images ``N x C x H x W`` (uint8,
0..255) and labels ``N`` (int64). For Fashion-MNIST and MNIST the sources are tried in
this order:

1. ``$GMLIB_DATA/<name>/`` (or torchvision's layout ``$GMLIB_DATA/FashionMNIST/raw/``):
   the four IDX files, plain or ``.gz``;
2. the cache, ``$GMLIB_CACHE`` or ``~/.cache/gmlib``, as ``<name>/raw/``;
3. a system folder such as Debian's package ``dataset-fashion-mnist``
   (``/usr/share/datasets/fashion-mnist``), decompressed into the cache;
4. the download from the dataset's publisher, each file checked against its MD5
   checksum.

The IDX files are parsed by torchvision's own reader. ``"digits"`` is scikit-learn's
bundled 8x8 digits (no network, ever), scaled to 0..255; it suits tiny tests.
Taught in ``notebooks/00_introduction.ipynb``, section "A first look at Fashion-MNIST".
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

SPLITS = ("train", "test")
FILES = {  # split -> (images file, labels file), without .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class IdxSpec:
    """Where an IDX dataset lives and how to check it."""

    torchvision_name: str  # folder name in torchvision's layout
    classes: tuple[str, ...]
    system_dirs: tuple[str, ...]  # folders an OS package installs
    apt_package: str | None
    mirrors: tuple[str, ...]
    gz_md5: dict[str, str]  # upstream .gz file -> MD5 (the download's checksum)
    sizes: dict[str, int] = field(
        default_factory=lambda: {"train": 60000, "test": 10000}
    )


def _torchvision_resources(cls_name: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """Mirrors and .gz checksums as torchvision publishes them, so both stay in step."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    return tuple(cls.mirrors), dict(cls.resources)


_FASHION_MIRRORS, _FASHION_MD5 = _torchvision_resources("FashionMNIST")
_MNIST_MIRRORS, _MNIST_MD5 = _torchvision_resources("MNIST")

DATASETS: dict[str, IdxSpec | None] = {
    "fashion-mnist": IdxSpec(
        torchvision_name="FashionMNIST",
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        apt_package="dataset-fashion-mnist",
        mirrors=_FASHION_MIRRORS,
        gz_md5=_FASHION_MD5,
    ),
    "mnist": IdxSpec(
        torchvision_name="MNIST",
        classes=tuple(str(d) for d in range(10)),
        system_dirs=("/usr/share/datasets/mnist",),
        apt_package=None,
        mirrors=_MNIST_MIRRORS,
        gz_md5=_MNIST_MD5,
    ),
    "digits": None,  # scikit-learn's bundled 8x8 digits
}


class DatasetNotFoundError(FileNotFoundError):
    """No source in the chain could provide the dataset.

    The message lists each source tried and the remedies.
    """


@dataclass
class ImageData:
    """Images ``(N, C, H, W)`` uint8 and labels ``(N,)`` int64.

    Unpacks as ``x, y = data``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str

    def __iter__(self):
        return iter((self.images, self.labels))

    def __len__(self) -> int:
        return len(self.labels)


def cache_dir() -> Path:
    """The folder gmlib caches data and checkpoints in.

    ``$GMLIB_CACHE`` if set, else ``~/.cache/gmlib``.
    """
    return Path(os.environ.get("GMLIB_CACHE") or Path.home() / ".cache" / "gmlib")


def load(name: str, *, split: str = "train", limit: int | None = None) -> ImageData:
    """Load a dataset split as uint8 images ``(N, C, H, W)`` and int64 labels.

    ``name`` is one of ``"fashion-mnist"``, ``"mnist"``, ``"digits"``; ``split`` is
    ``"train"`` or ``"test"``; ``limit`` keeps the first ``limit`` examples.
    """
    key = str(name).lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; "
            f"expected one of {', '.join(map(repr, DATASETS))}"
        )
    if split not in SPLITS:
        raise ValueError(
            f"unknown split {split!r}; expected one of {', '.join(map(repr, SPLITS))}"
        )
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    spec = DATASETS[key]
    data = _load_digits(split) if spec is None else _load_idx(key, spec, split)
    if limit is not None:
        data.images, data.labels = data.images[:limit], data.labels[:limit]
    return data


def _load_digits(split: str) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float()  # (1797, 8, 8), values 0..16
    images = (images * (255 / 16)).round().to(torch.uint8)[:, None]  # (1797, 1, 8, 8)
    labels = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(labels))
    index = order[:cut] if split == "train" else order[cut:]
    return ImageData(
        images[index],
        labels[index],
        tuple(str(d) for d in range(10)),
        "scikit-learn's bundled digits",
    )


# --- the IDX chain --------------------------------------------------------------------


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx_pair(
    folder: Path, split: str, spec: IdxSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    """Parse a split's image and label files with torchvision's IDX reader."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    paths = []
    for stem in FILES[split]:
        path = _find_idx(folder, stem)
        if path is None:
            raise FileNotFoundError(f"{folder / stem}[.gz] is missing")
        paths.append(path)
    with tempfile.TemporaryDirectory() as tmp:
        plain = []
        for path in paths:  # torchvision's reader wants plain files
            if path.suffix == ".gz":
                _gunzip(path, Path(tmp) / path.stem)
                path = Path(tmp) / path.stem
            plain.append(str(path))
        images = read_image_file(plain[0])[:, None]  # (N, 1, 28, 28) uint8
        labels = read_label_file(plain[1]).long()  # (N,)
    expected = spec.sizes[split]
    if len(images) != expected or len(labels) != expected:
        raise ValueError(
            f"{folder}: expected {expected} {split} examples, found "
            f"{len(images)} images and {len(labels)} labels"
        )
    return images, labels


def _gunzip(src: Path, dst: Path) -> None:
    """Decompress ``src`` to ``dst`` atomically.

    The data goes to a temp file in the same folder, which is then renamed.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    try:
        with gzip.open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, length=1 << 20)
        publish(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish(tmp: str | Path, dst: Path) -> None:
    """Give a finished temporary file the usual mode and rename it over ``dst``.

    The usual mode is the one ``umask`` allows (mkstemp makes the file private).
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, dst)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(spec: IdxSpec, raw: Path) -> None:
    """Fetch the four .gz files from the first mirror that answers; check each MD5."""
    from torchvision.datasets.utils import download_url

    for gz_name, md5 in spec.gz_md5.items():
        stem = gz_name.removesuffix(".gz")
        if (raw / stem).is_file():
            continue
        errors = []
        for mirror in spec.mirrors:
            try:
                download_url(mirror + gz_name, root=str(raw), filename=gz_name, md5=md5)
            except Exception as exc:  # network errors and checksum mismatches alike
                errors.append(f"{mirror + gz_name}: {exc}")
                (raw / gz_name).unlink(missing_ok=True)
                continue
            # download_url checks too; never trust a partial file
            if _md5(raw / gz_name) != md5:
                (raw / gz_name).unlink(missing_ok=True)
                errors.append(f"{mirror + gz_name}: MD5 checksum mismatch")
                continue
            _gunzip(raw / gz_name, raw / stem)
            (raw / gz_name).unlink()
            break
        else:
            raise OSError("; ".join(errors))


def _load_idx(key: str, spec: IdxSpec, split: str) -> ImageData:
    tried: list[str] = []

    def attempt(folder: Path, label: str) -> ImageData | None:
        try:
            images, labels = _read_idx_pair(folder, split, spec)
        except Exception as exc:
            tried.append(f"{label} ({folder}): {exc}")
            return None
        return ImageData(images, labels, spec.classes, f"{label}: {folder}")

    env = os.environ.get("GMLIB_DATA", "").strip()
    if env:
        root = Path(env).expanduser()
        for folder in (root / key, root / spec.torchvision_name / "raw"):
            if folder.is_dir():
                found = attempt(folder, "$GMLIB_DATA")
                if found:
                    return found
        if not tried:
            tried.append(
                f"$GMLIB_DATA ({root}): neither {root / key} nor "
                f"{root / spec.torchvision_name / 'raw'} is a folder"
            )
    else:
        tried.append("$GMLIB_DATA: not set")

    raw = cache_dir() / key / "raw"
    found = attempt(raw, "cache")
    if found:
        return found

    for system in spec.system_dirs:
        folder = Path(system)
        if not folder.is_dir():
            tried.append(f"system folder {folder}: not present")
            continue
        try:
            for stem in (*FILES["train"], *FILES["test"]):
                src = _find_idx(folder, stem)
                if src is None:
                    raise FileNotFoundError(f"{folder / stem}[.gz] is missing")
                if src.suffix == ".gz":
                    _gunzip(src, raw / stem)
                else:
                    shutil.copyfile(src, raw / stem)
        except Exception as exc:
            tried.append(f"system folder {folder}: {exc}")
            continue
        found = attempt(raw, f"cache (copied from {folder})")
        if found:
            return found

    try:
        _download(spec, raw)
    except Exception as exc:
        tried.append(f"download from {', '.join(spec.mirrors)}: {exc}")
    else:
        found = attempt(raw, "cache (downloaded)")
        if found:
            return found

    remedies = [
        f"set GMLIB_DATA to a folder holding {key}/ with the four IDX files "
        f"({', '.join(FILES['train'] + FILES['test'])}, plain or .gz)"
    ]
    if spec.apt_package:
        remedies.append(f"on Debian or Ubuntu: sudo apt-get install {spec.apt_package}")
    remedies.append(
        "connect to the internet and call load() again: it downloads into "
        f"{raw} and checks each file's MD5"
    )
    raise DatasetNotFoundError(
        f"could not load {key!r} ({split}). Sources tried, in order:\n"
        + "\n".join(f"  - {t}" for t in tried)
        + "\nRemedies (any one):\n"
        + "\n".join(f"  * {r}" for r in remedies)
    )


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in 0..255 to float in [0, 1].

    Anything else is refused with a clear error.
    """
    if images.dtype != torch.uint8:
        raise TypeError(
            f"expected uint8 images (values 0..255), got dtype {images.dtype}"
        )
    return images.float().div_(255)
