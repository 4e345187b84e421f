"""Datasets as uint8 tensors, from the first source in a chain that has them.

``load("fashion-mnist", split="train")`` returns images ``N x C x H x W`` (uint8,
0..255) and labels ``N`` (int64). For Fashion-MNIST and MNIST the sources are tried in
this order:

1. ``$GMLIB_DATA/<name>/`` (or torchvision's layout ``$GMLIB_DATA/FashionMNIST/raw/``):
   the four IDX files, plain or ``.gz``;
2. the cache, ``$GMLIB_CACHE`` or ``~/.cache/gmlib``, as ``<name>/raw/``;
3. a system folder such as Debian's package ``dataset-fashion-mnist``
   (``/usr/share/datasets/fashion-mnist``), decompressed into the cache; when the cache
   cannot be written, the folder is read directly (with a warning);
4. the download from the dataset's publisher, each file checked against its MD5
   checksum.

Every file read, from any source, must have the IDX header, size and (where the
dataset's spec publishes one) SHA-256 of the decompressed file that the dataset has; a
copy that does not is passed over for the next source, and the reason is listed if
all fail. The IDX files are parsed by torchvision's own reader.

``"digits"`` is scikit-learn's bundled 8x8 digits (no network, ever), scaled to
0..255; it suits tiny tests.
Taught in ``notebooks/00_introduction.ipynb``, section "A first look at Fashion-MNIST".
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import math
import numbers
import os
import shutil
import struct
import tempfile
import warnings
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
    # decompressed IDX file (FILES' names) -> SHA-256 of its content; None: the
    # header and size are checked, not the content
    idx_sha256: dict[str, str] | None = None


def _torchvision_resources(cls_name: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """Mirrors and .gz checksums as torchvision publishes them, so both stay in step."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    return tuple(cls.mirrors), dict(cls.resources)


_FASHION_MIRRORS, _FASHION_MD5 = _torchvision_resources("FashionMNIST")
_MNIST_MIRRORS, _MNIST_MD5 = _torchvision_resources("MNIST")

# SHA-256 of the decompressed files. They hold the same bytes in the upstream .gz files
# and in Debian's (recompressed) ones, so one checksum serves every source.
_FASHION_SHA256 = {
    "train-images-idx3-ubyte": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    "train-labels-idx1-ubyte": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
    "t10k-images-idx3-ubyte": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    "t10k-labels-idx1-ubyte": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
}

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
        idx_sha256=_FASHION_SHA256,
    ),
    "mnist": IdxSpec(
        torchvision_name="MNIST",
        classes=tuple(str(d) for d in range(10)),
        system_dirs=("/usr/share/datasets/mnist",),
        apt_package=None,
        mirrors=_MNIST_MIRRORS,
        gz_md5=_MNIST_MD5,
        idx_sha256=None,  # no local copy to take them from: header and size only
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
    ``"train"`` or ``"test"``; ``limit`` keeps the first ``limit`` examples (the
    whole split when it has fewer).
    """
    names = ", ".join(map(repr, DATASETS))
    if not isinstance(name, str):
        raise TypeError(
            f"name must be a str, one of {names}; got {name!r} ({type(name).__name__})"
        )
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {names}")
    if not isinstance(split, str):
        raise TypeError(
            f"split must be a str, one of {', '.join(map(repr, SPLITS))}; got "
            f"{split!r} ({type(split).__name__})"
        )
    if split not in SPLITS:
        raise ValueError(
            f"unknown split {split!r}; expected one of {', '.join(map(repr, SPLITS))}"
        )
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, numbers.Integral):
            raise TypeError(
                f"limit must be a positive int or None, got {limit!r} "
                f"({type(limit).__name__})"
            )
        limit = int(limit)
        if limit < 1:
            raise ValueError(f"limit must be a positive int or None, got {limit}")
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
    """Parse a split's image and label files with torchvision's IDX reader.

    Each file is checked first (:func:`_check_idx`); a ``.gz`` file is decompressed
    into a temporary folder, and checked there.
    """
    from torchvision.datasets.mnist import read_image_file, read_label_file

    paths = []
    for stem in FILES[split]:
        path = _find_idx(folder, stem)
        if path is None:
            raise FileNotFoundError(f"{folder / stem}[.gz] is missing")
        paths.append(path)
    with tempfile.TemporaryDirectory() as tmp:
        plain = []
        for stem, path in zip(FILES[split], paths):
            target = path
            if path.suffix == ".gz":  # torchvision's reader wants plain files
                target = Path(tmp) / stem
                with gzip.open(path, "rb") as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout, length=1 << 20)
            _check_idx(target, stem, spec, shown=path)
            plain.append(str(target))
        images = read_image_file(plain[0])[:, None]  # (N, 1, 28, 28) uint8
        labels = read_label_file(plain[1]).long()  # (N,)
    expected = spec.sizes[split]
    if len(images) != expected or len(labels) != expected:
        raise ValueError(
            f"{folder}: expected {expected} {split} examples, found "
            f"{len(images)} images and {len(labels)} labels"
        )
    top = int(labels.max()) if len(labels) else 0  # the file's labels are uint8
    if top >= len(spec.classes):
        raise ValueError(
            f"{paths[1]}: labels must lie in 0..{len(spec.classes) - 1}, found {top}"
        )
    return images, labels


_IDX_LAYOUT = {  # kind -> (magic number, number of dimensions)
    "images": (0x0803, 3),
    "labels": (0x0801, 1),
}


def _check_idx(path: Path, stem: str, spec: IdxSpec, shown: Path | None = None) -> None:
    """Raise ValueError unless the plain IDX file ``path`` is the dataset's ``stem``.

    Checked: the magic number, the number of examples (``spec.sizes``), the file size
    the header implies (a truncated or padded file fails), and, when ``spec`` has
    one, the SHA-256 of the whole file (a corrupted byte fails). ``shown`` is the name
    the message gives (the ``.gz`` file a temporary ``path`` came from).
    """
    shown = shown or path
    split = next(s for s, stems in FILES.items() if stem in stems)
    magic, ndim = _IDX_LAYOUT["images" if "-images-" in stem else "labels"]
    with open(path, "rb") as f:
        header = f.read(4 * (ndim + 1))
    if len(header) < 4 * (ndim + 1):
        raise ValueError(f"{shown}: truncated IDX header ({len(header)} bytes)")
    found_magic, *dims = struct.unpack(f">{ndim + 1}I", header)
    if found_magic != magic:
        raise ValueError(
            f"{shown}: not an IDX {stem} file (magic number {found_magic:#010x}, "
            f"expected {magic:#010x})"
        )
    if dims[0] != spec.sizes[split]:
        raise ValueError(
            f"{shown}: expected {spec.sizes[split]} examples, the header says {dims[0]}"
        )
    size = path.stat().st_size
    expected_size = len(header) + math.prod(dims)  # one byte per entry
    if size != expected_size:
        raise ValueError(
            f"{shown}: {size} bytes, expected {expected_size} "
            f"({'truncated' if size < expected_size else 'extra bytes'})"
        )
    published = (spec.idx_sha256 or {}).get(stem)
    if published is not None:
        digest = _digest(path, "sha256")
        if digest != published:
            raise ValueError(
                f"{shown}: SHA-256 checksum mismatch (a corrupted copy): content "
                f"hashes to {digest[:16]}..., the dataset's is {published[:16]}..."
            )


def _install_copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically, decompressing it if it ends in ``.gz``.

    The data goes to a temp file in the same folder, which is then renamed.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    opener = gzip.open if src.suffix == ".gz" else open
    try:
        with opener(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
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


def _digest(path: Path, algorithm: str = "md5") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(spec: IdxSpec, raw: Path) -> None:
    """Fetch the four .gz files from the first mirror that answers; check each MD5.

    A file already in ``raw`` is kept only if it passes :func:`_check_idx`.
    """
    from torchvision.datasets.utils import download_url

    for gz_name, md5 in spec.gz_md5.items():
        stem = gz_name.removesuffix(".gz")
        if (raw / stem).is_file():
            try:
                _check_idx(raw / stem, stem, spec)
            except ValueError:
                pass  # a corrupted copy: the download replaces it
            else:
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
            if _digest(raw / gz_name) != md5:
                (raw / gz_name).unlink(missing_ok=True)
                errors.append(f"{mirror + gz_name}: MD5 checksum mismatch")
                continue
            _install_copy(raw / gz_name, raw / stem)
            (raw / gz_name).unlink()
            break
        else:
            raise OSError("; ".join(errors))


# errno values that say a folder cannot take a new file (read-only, full, over quota,
# no permission, a path through a regular file)
_UNWRITABLE = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    getattr(errno, "EDQUOT", errno.ENOSPC),
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EISDIR,
}
_warned_unwritable: set[str] = set()  # caches already warned about, once per process


def _warn_cache_unwritable(raw: Path, exc: OSError) -> None:
    if str(raw) in _warned_unwritable:
        return
    _warned_unwritable.add(str(raw))
    warnings.warn(
        f"the data cache {raw} cannot be written ({exc}); the system folder is read "
        "directly, and decompressed again on every load. To fix it, set GMLIB_CACHE "
        "to a writable folder with a few hundred MB free.",
        stacklevel=4,
    )


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
        stems = (*FILES["train"], *FILES["test"])
        missing = [stem for stem in stems if _find_idx(folder, stem) is None]
        if missing:
            tried.append(
                f"system folder {folder}: {folder / missing[0]}[.gz] is missing"
            )
            continue
        try:
            for stem in stems:
                _install_copy(_find_idx(folder, stem), raw / stem)
        except OSError as exc:
            if exc.errno not in _UNWRITABLE:
                tried.append(f"system folder {folder}: {exc}")
                continue
            # the cache cannot take the files: read them where they are
            tried.append(f"cache ({raw}): cannot be written: {exc}")
            found = attempt(folder, "system folder, read directly")
            if found:
                _warn_cache_unwritable(raw, exc)
                return found
            continue
        except Exception as exc:  # e.g. EOFError from a truncated .gz
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
    if not isinstance(images, torch.Tensor):
        kind = f"{type(images).__module__}.{type(images).__qualname__}"
        raise TypeError(
            "expected a torch.Tensor of uint8 images (values 0..255), got "
            f"{kind.removeprefix('builtins.')}"
            + (
                " (convert it with torch.from_numpy)"
                if hasattr(images, "dtype")
                else ""
            )
        )
    if images.dtype != torch.uint8:
        raise TypeError(
            f"expected uint8 images (values 0..255), got dtype {images.dtype}"
        )
    return images.float().div_(255)
