"""The data chain: each source is faked with temporary folders; the download with a fake
network."""

import dataclasses
import errno
import gzip
import hashlib
import io
import os
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from gmlib import data

SIZES = {"train": 6, "test": 4}


def idx_bytes(split: str, kind: str, seed: int) -> bytes:
    """A valid IDX file: images (N, 28, 28) uint8 or labels (N,) uint8.

    The content is set by ``seed``.
    """
    n = SIZES[split]
    g = torch.Generator().manual_seed(seed)
    if kind == "images":
        pixels = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        return struct.pack(">IIII", 0x0803, n, 28, 28) + pixels.numpy().tobytes()
    labels = torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8)
    return struct.pack(">II", 0x0801, n) + labels.numpy().tobytes()


def write_idx(folder: Path, seed: int, *, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in data.FILES.items():
        for stem, kind in ((images, "images"), (labels, "labels")):
            content = idx_bytes(split, kind, seed)
            if gz:
                (folder / f"{stem}.gz").write_bytes(gzip.compress(content))
            else:
                (folder / stem).write_bytes(content)


def expected_images(split: str, seed: int) -> torch.Tensor:
    raw = idx_bytes(split, "images", seed)[16:]
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(-1, 1, 28, 28)


class FakeNetwork:
    """Stands in for urllib.request.urlopen.

    It serves ``files`` by URL and records every request.
    """

    def __init__(self, files: dict[str, bytes] | None = None, offline: bool = False):
        self.files, self.offline, self.requests = files or {}, offline, []

    def __call__(self, request, *args, **kwargs):
        url = (
            request.full_url if isinstance(request, urllib.request.Request) else request
        )
        self.requests.append(url)
        if self.offline:
            raise urllib.error.URLError(
                "[Errno -3] Temporary failure in name resolution"
            )
        if url not in self.files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        body = io.BytesIO(self.files[url])

        class Response:
            length = len(self.files[url])

            def __init__(self):
                self.url = url

            def read(self, n=-1):
                return body.read(n)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        return Response()


@pytest.fixture
def fake_fashion(tmp_path, monkeypatch):
    """Fashion-MNIST's spec, pointed at temporary folders and a fake mirror.

    The sizes are tiny.
    """
    system = tmp_path / "system"
    real = data.DATASETS["fashion-mnist"]
    gz = {
        f"{stem}.gz": gzip.compress(idx_bytes(split, kind, seed=3))
        for split, stems in data.FILES.items()
        for stem, kind in zip(stems, ("images", "labels"))
    }
    spec = dataclasses.replace(
        real,
        sizes=SIZES,
        system_dirs=(str(system),),
        mirrors=("https://mirror.test/fmnist/",),
        gz_md5={name: hashlib.md5(body).hexdigest() for name, body in gz.items()},
        idx_sha256=None,  # the fakes differ by seed; see with_checksums
    )
    monkeypatch.setitem(data.DATASETS, "fashion-mnist", spec)
    network = FakeNetwork({spec.mirrors[0] + name: body for name, body in gz.items()})
    monkeypatch.setattr(urllib.request, "urlopen", network)
    return spec, system, network, gz


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError) as err:
        data.load("no-such-set")
    for name in ("'fashion-mnist'", "'mnist'", "'digits'"):
        assert name in str(err.value)


def test_bad_split_and_limit():
    with pytest.raises(ValueError, match="'train', 'test'"):
        data.load("digits", split="validation")
    with pytest.raises(ValueError, match="positive int"):
        data.load("digits", limit=0)


def test_digits_are_uint8_images_split_without_overlap():
    train, test = data.load("digits", split="train"), data.load("digits", split="test")
    assert train.images.shape[1:] == (1, 8, 8) and train.images.dtype == torch.uint8
    assert len(train) + len(test) == 1797
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    assert train.labels.dtype == torch.int64
    assert set(train.labels.tolist()) == set(range(10))
    # no test image is a copy of a train image with the same index set: the splits are
    # disjoint
    x, y = train
    assert x is train.images and y is train.labels
    assert len(data.load("digits", limit=10)) == 10


@pytest.mark.parametrize("layout", ["named", "torchvision"])
@pytest.mark.parametrize("gz", [True, False])
def test_gmlib_data_folder_comes_first(fake_fashion, tmp_path, monkeypatch, layout, gz):
    spec, system, network, _ = fake_fashion
    write_idx(system, seed=1, gz=True)  # a lower source with other content
    root = tmp_path / "mydata"
    folder = (
        root / "fashion-mnist" if layout == "named" else root / "FashionMNIST" / "raw"
    )
    write_idx(folder, seed=7, gz=gz)
    monkeypatch.setenv("GMLIB_DATA", str(root))
    loaded = data.load("fashion-mnist", split="test")
    assert loaded.source.startswith("$GMLIB_DATA")
    assert torch.equal(loaded.images, expected_images("test", seed=7))
    assert loaded.classes[0] == "T-shirt/top" and network.requests == []


def test_system_folder_is_decompressed_into_the_cache(fake_fashion):
    spec, system, network, _ = fake_fashion
    write_idx(system, seed=5, gz=True)
    first = data.load("fashion-mnist", split="train")
    assert "copied from" in first.source
    raw = data.cache_dir() / "fashion-mnist" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        data.FILES["train"] + data.FILES["test"]
    )
    assert not list(raw.glob("*.part"))
    for path in system.iterdir():  # the cache now suffices on its own
        path.unlink()
    second = data.load("fashion-mnist", split="train")
    assert second.source.startswith("cache:")
    assert torch.equal(first.images, second.images)
    assert torch.equal(second.images, expected_images("train", seed=5))
    assert network.requests == []


def test_download_checks_checksums_and_caches(fake_fashion):
    spec, system, network, gz = fake_fashion  # system folder absent: download
    loaded = data.load("fashion-mnist", split="test")
    assert loaded.source.startswith("cache (downloaded)")
    assert torch.equal(loaded.images, expected_images("test", seed=3))
    assert all(url.startswith(spec.mirrors[0]) for url in network.requests)
    raw = data.cache_dir() / "fashion-mnist" / "raw"
    assert not list(raw.glob("*.gz"))  # only the decompressed files stay
    count = len(network.requests)
    data.load("fashion-mnist", split="train")
    assert len(network.requests) == count  # second load: no network


def test_download_with_a_bad_checksum_is_refused(fake_fashion, monkeypatch):
    spec, system, network, gz = fake_fashion
    bad = dict(spec.gz_md5, **{"t10k-images-idx3-ubyte.gz": "0" * 32})
    monkeypatch.setitem(
        data.DATASETS, "fashion-mnist", dataclasses.replace(spec, gz_md5=bad)
    )
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load("fashion-mnist", split="test")
    assert "t10k-images-idx3-ubyte.gz" in str(err.value)
    raw = data.cache_dir() / "fashion-mnist" / "raw"
    assert not (raw / "t10k-images-idx3-ubyte").exists()  # nothing unverified is kept


def test_nothing_reachable_lists_every_source_and_remedy(
    fake_fashion, monkeypatch, tmp_path
):
    spec, system, network, _ = fake_fashion
    network.offline = True
    monkeypatch.setenv("GMLIB_DATA", str(tmp_path / "empty"))
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load("fashion-mnist")
    message = str(err.value)
    for source in ("$GMLIB_DATA", "cache", "system folder", "download", str(system)):
        assert source in message, source
    for remedy in (
        "set GMLIB_DATA",
        "apt-get install dataset-fashion-mnist",
        "internet",
    ):
        assert remedy in message, remedy
    assert isinstance(err.value, FileNotFoundError)


def test_truncated_file_falls_through_to_the_next_source(
    fake_fashion, tmp_path, monkeypatch
):
    spec, system, network, _ = fake_fashion
    root = tmp_path / "mydata"
    write_idx(root / "fashion-mnist", seed=2, gz=False)
    path = root / "fashion-mnist" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100])
    monkeypatch.setenv("GMLIB_DATA", str(root))
    write_idx(system, seed=9, gz=True)
    loaded = data.load("fashion-mnist", split="test")
    assert "copied from" in loaded.source
    assert torch.equal(loaded.images, expected_images("test", seed=9))


# The Debian package's files hold the upstream data (recompressed): these are the
# SHA-256 of the decompressed IDX files, which equal upstream's.
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
SHA256 = {
    "t10k-images-idx3-ubyte": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    "t10k-labels-idx1-ubyte": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
    "train-images-idx3-ubyte": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    "train-labels-idx1-ubyte": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
}


@pytest.mark.skipif(
    not DEBIAN.is_dir() and not os.environ.get("CI"),
    reason="needs Debian's dataset-fashion-mnist (CI installs it)",
)
def test_real_fashion_mnist_from_the_debian_package():
    test = data.load("fashion-mnist", split="test")
    assert test.images.shape == (10000, 1, 28, 28) and test.images.dtype == torch.uint8
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    raw = data.cache_dir() / "fashion-mnist" / "raw"
    for name, digest in SHA256.items():
        assert hashlib.sha256((raw / name).read_bytes()).hexdigest() == digest, name


def test_to_float_refuses_non_uint8():
    extremes = torch.tensor([0, 255], dtype=torch.uint8)
    assert data.to_float(extremes).tolist() == [0.0, 1.0]
    with pytest.raises(TypeError, match="uint8"):
        data.to_float(torch.zeros(2))


# --- bad input ------------------------------------------------------------------------

BAD_LOAD_ARGUMENTS = [  # keyword arguments, error, what the message must say
    (dict(name=None), TypeError, r"name must be a str.*got None \(NoneType\)"),
    (dict(name=3), TypeError, r"name must be a str.*'fashion-mnist'.*got 3 \(int\)"),
    (dict(name=b"mnist"), TypeError, r"name must be a str.*\(bytes\)"),
    (dict(name="cifar10"), ValueError, r"unknown dataset 'cifar10'.*'digits'"),
    (dict(name=""), ValueError, r"unknown dataset ''"),
    (dict(name="fashion-mnist", split="val"), ValueError, r"split 'val'.*'train'"),
    (dict(name="fashion-mnist", split="TRAIN"), ValueError, r"split 'TRAIN'"),
    (dict(name="digits", split=None), TypeError, r"split must be a str.*NoneType"),
    (dict(name="fashion-mnist", split=0), TypeError, r"split must be a str.*int"),
    (dict(name="fashion-mnist", limit=0), ValueError, r"positive int.*got 0"),
    (dict(name="fashion-mnist", limit=-1), ValueError, r"positive int.*got -1"),
    (dict(name="digits", limit=1.5), TypeError, r"positive int.*1\.5 \(float\)"),
    (dict(name="digits", limit=10.0), TypeError, r"positive int.*\(float\)"),
    (dict(name="digits", limit=True), TypeError, r"positive int.*True \(bool\)"),
    (dict(name="digits", limit="10"), TypeError, r"positive int.*'10' \(str\)"),
    (dict(name="digits", limit=torch.tensor(5)), TypeError, r"\(Tensor\)"),
]


@pytest.mark.parametrize(
    "kwargs, error, message",
    BAD_LOAD_ARGUMENTS,
    ids=[repr(kwargs) for kwargs, _, _ in BAD_LOAD_ARGUMENTS],
)
def test_load_refuses_bad_arguments_before_reading_anything(
    kwargs, error, message, monkeypatch
):
    def no_reading(*args, **kwargs):
        raise AssertionError("bad arguments must be refused before any data is read")

    monkeypatch.setattr(data, "_load_idx", no_reading)
    monkeypatch.setattr(data, "_load_digits", no_reading)
    name = kwargs.pop("name")
    with pytest.raises(error, match=message):
        data.load(name, **kwargs)


BAD_TO_FLOAT_INPUTS = [  # input, what the message must say
    (torch.zeros(2), r"uint8.*got dtype torch\.float32"),
    (torch.zeros(2, dtype=torch.float64), r"uint8.*torch\.float64"),
    (torch.zeros(2, dtype=torch.int64), r"uint8.*torch\.int64"),
    (torch.zeros(2, dtype=torch.bool), r"uint8.*torch\.bool"),
    (np.zeros(2, dtype=np.uint8), r"torch\.Tensor.*numpy\.ndarray.*from_numpy"),
    ([0, 255], r"torch\.Tensor.*got list$"),
    (None, r"torch\.Tensor.*got NoneType$"),
]


@pytest.mark.parametrize(
    "images, message",
    BAD_TO_FLOAT_INPUTS,
    ids=[
        type(x).__name__ + str(getattr(x, "dtype", "")) for x, _ in BAD_TO_FLOAT_INPUTS
    ],
)
def test_to_float_refuses_what_is_not_a_uint8_tensor(images, message):
    with pytest.raises(TypeError, match=message):
        data.to_float(images)


def test_limit_keeps_the_first_examples_and_caps_at_the_split(fake_fashion):
    spec, system, network, _ = fake_fashion
    write_idx(system, seed=5, gz=True)
    whole = data.load("fashion-mnist", split="test")
    assert len(whole) == SIZES["test"]
    for limit in (1, SIZES["test"] - 1, np.int64(2)):
        part = data.load("fashion-mnist", split="test", limit=limit)
        assert len(part) == int(limit) and isinstance(len(part), int)
        assert torch.equal(part.images, whole.images[: int(limit)])
        assert torch.equal(part.labels, whole.labels[: int(limit)])
    # more than the split holds: the whole split, not an error
    for limit in (SIZES["test"], SIZES["test"] + 1, 10**9):
        capped = data.load("fashion-mnist", split="test", limit=limit)
        assert torch.equal(capped.images, whole.images)
        assert torch.equal(capped.labels, whole.labels)
    # names are matched without regard to case and "_" for "-"
    assert torch.equal(data.load("Fashion_MNIST", split="test").images, whole.images)


# --- content checksums ----------------------------------------------------------------


def test_fashion_mnist_spec_holds_the_decompressed_files_checksums():
    assert data.DATASETS["fashion-mnist"].idx_sha256 == SHA256
    assert data.DATASETS["mnist"].idx_sha256 is None  # header and size only


def with_checksums(monkeypatch, spec: data.IdxSpec, seed: int) -> data.IdxSpec:
    """The fixture's spec, with the SHA-256 of the fake files made with ``seed``."""
    sums = {
        stem: hashlib.sha256(idx_bytes(split, kind, seed)).hexdigest()
        for split, stems in data.FILES.items()
        for stem, kind in zip(stems, ("images", "labels"))
    }
    checked = dataclasses.replace(spec, idx_sha256=sums)
    monkeypatch.setitem(data.DATASETS, "fashion-mnist", checked)
    return checked


def flip(content: bytes, index: int) -> bytes:
    damaged = bytearray(content)
    damaged[index] ^= 0xFF
    return bytes(damaged)


def relabel(content: bytes, index: int, value: int) -> bytes:
    damaged = bytearray(content)
    damaged[index] = value
    return bytes(damaged)


DAMAGES = {  # name -> (file kind, damage, reason given, needs the checksum)
    "flipped pixel": ("images", lambda b: flip(b, 16 + 300), "SHA-256", True),
    "last pixel": ("images", lambda b: flip(b, len(b) - 1), "SHA-256", True),
    "other valid label": (
        "labels",
        lambda b: relabel(b, 8, (b[8] + 1) % 10),
        "SHA-256",
        True,
    ),
    "truncated": ("images", lambda b: b[:-5], "truncated", False),
    "extra bytes": ("images", lambda b: b + bytes(3), "extra bytes", False),
    "empty": ("labels", lambda b: b"", "truncated IDX header", False),
    "wrong magic": ("images", lambda b: relabel(b, 3, 1), "magic number", False),
    "wrong count": (
        "images",
        lambda b: b[:4] + struct.pack(">I", 5) + b[8:] + bytes(784),
        "expected 4 examples, the header says 5",
        False,
    ),
    "label out of range": ("labels", lambda b: relabel(b, 9, 200), "0..9", False),
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_file_is_passed_over_with_its_reason(
    fake_fashion, tmp_path, monkeypatch, damage, gz
):
    spec, system, network, _ = fake_fashion
    kind, damage_fn, reason, needs_checksum = DAMAGES[damage]
    if needs_checksum:
        with_checksums(monkeypatch, spec, seed=4)
    folder = tmp_path / "mydata" / "fashion-mnist"
    write_idx(folder, seed=4, gz=gz)
    stem = data.FILES["test"][0 if kind == "images" else 1]
    content = damage_fn(idx_bytes("test", kind, seed=4))
    assert content != idx_bytes("test", kind, seed=4)
    if gz:
        (folder / f"{stem}.gz").write_bytes(gzip.compress(content))
    else:
        (folder / stem).write_bytes(content)
    monkeypatch.setenv("GMLIB_DATA", str(folder.parent))
    write_idx(system, seed=4, gz=True)  # the same data, intact
    loaded = data.load("fashion-mnist", split="test")
    assert "copied from" in loaded.source
    assert torch.equal(loaded.images, expected_images("test", seed=4))
    # the train split's files are intact: that split is read from $GMLIB_DATA
    assert data.load("fashion-mnist", split="train").source.startswith("$GMLIB_DATA")

    # no other source: the error gives the reason, on the $GMLIB_DATA line
    shutil.rmtree(system)
    shutil.rmtree(data.cache_dir())
    network.offline = True
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load("fashion-mnist", split="test")
    (line,) = [t for t in str(err.value).splitlines() if "$GMLIB_DATA" in t]
    assert reason in line and stem in line, line


def test_same_size_corruption_passes_only_where_no_checksum_is_published(
    fake_fashion, tmp_path, monkeypatch
):
    """The checksum is what catches a flipped byte: without one, it goes unnoticed."""
    spec, system, network, _ = fake_fashion
    folder = tmp_path / "mydata" / "fashion-mnist"
    write_idx(folder, seed=4, gz=False)
    path = folder / data.FILES["test"][0]
    path.write_bytes(flip(path.read_bytes(), 16 + 300))
    monkeypatch.setenv("GMLIB_DATA", str(folder.parent))
    unchecked = data.load("fashion-mnist", split="test")
    assert not torch.equal(unchecked.images, expected_images("test", seed=4))
    with_checksums(monkeypatch, spec, seed=4)
    network.offline = True
    with pytest.raises(data.DatasetNotFoundError, match="SHA-256 checksum mismatch"):
        data.load("fashion-mnist", split="test")


def test_corrupted_cache_copy_is_replaced_from_the_system_folder(
    fake_fashion, monkeypatch
):
    spec, system, network, _ = fake_fashion
    with_checksums(monkeypatch, spec, seed=5)
    write_idx(system, seed=5, gz=True)
    data.load("fashion-mnist", split="test")  # fills the cache
    cached = data.cache_dir() / "fashion-mnist" / "raw" / data.FILES["test"][0]
    good = cached.read_bytes()
    cached.write_bytes(flip(good, 16 + 1000))
    loaded = data.load("fashion-mnist", split="test")
    assert "copied from" in loaded.source
    assert torch.equal(loaded.images, expected_images("test", seed=5))
    assert cached.read_bytes() == good  # repaired in place
    assert data.load("fashion-mnist", split="test").source.startswith("cache:")
    assert network.requests == []


def test_corrupted_cache_copy_is_replaced_by_the_download(fake_fashion, monkeypatch):
    spec, system, network, gz = fake_fashion  # no system folder: the download
    with_checksums(monkeypatch, spec, seed=3)  # the fake mirror serves seed 3
    raw = data.cache_dir() / "fashion-mnist" / "raw"
    write_idx(raw, seed=3, gz=False)
    stem = data.FILES["test"][0]
    (raw / stem).write_bytes(flip((raw / stem).read_bytes(), 16 + 1000))
    loaded = data.load("fashion-mnist", split="test")
    assert loaded.source.startswith("cache (downloaded)")
    assert torch.equal(loaded.images, expected_images("test", seed=3))
    # only the damaged file is fetched: the intact ones are checked and kept
    assert set(network.requests) == {spec.mirrors[0] + f"{stem}.gz"}
    assert (
        hashlib.sha256((raw / stem).read_bytes()).hexdigest()
        == (data.DATASETS["fashion-mnist"].idx_sha256[stem])
    )


@pytest.mark.skipif(
    not DEBIAN.is_dir() and not os.environ.get("CI"),
    reason="needs Debian's dataset-fashion-mnist (CI installs it)",
)
def test_real_fashion_mnist_corrupted_in_the_cache_is_copied_again():
    raw = data.cache_dir() / "fashion-mnist" / "raw"
    raw.mkdir(parents=True)
    stem = "t10k-images-idx3-ubyte"
    with gzip.open(DEBIAN / f"{stem}.gz") as f:
        good = f.read()
    (raw / stem).write_bytes(flip(good, 16 + 28 * 28 * 5000 + 400))  # same size
    shutil.copyfile(
        DEBIAN / "t10k-labels-idx1-ubyte.gz", raw / "t10k-labels-idx1-ubyte.gz"
    )
    loaded = data.load("fashion-mnist", split="test")
    assert loaded.source.startswith("cache (copied from")
    assert hashlib.sha256((raw / stem).read_bytes()).hexdigest() == SHA256[stem]
    expected = torch.frombuffer(bytearray(good[16:]), dtype=torch.uint8)
    assert torch.equal(loaded.images.flatten(), expected)


# --- a cache that cannot be written ---------------------------------------------------


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def erofs(*args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system")


@pytest.mark.parametrize("how", ["under a regular file", "ENOSPC", "EROFS"])
def test_unwritable_cache_reads_the_system_folder_directly(
    fake_fashion, tmp_path, monkeypatch, how
):
    spec, system, network, _ = fake_fashion
    with_checksums(monkeypatch, spec, seed=5)
    write_idx(system, seed=5, gz=True)
    monkeypatch.setattr(data, "_warned_unwritable", set())
    if how == "under a regular file":
        (tmp_path / "a-file").write_text("not a folder")
        monkeypatch.setenv("GMLIB_CACHE", str(tmp_path / "a-file" / "cache"))
    elif how == "ENOSPC":
        monkeypatch.setattr(data, "publish", enospc)  # the disk fills up mid-copy
    else:
        monkeypatch.setattr(tempfile, "mkstemp", erofs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train = data.load("fashion-mnist", split="train")
        test = data.load("fashion-mnist", split="test")
    assert train.source.startswith("system folder, read directly")
    assert torch.equal(train.images, expected_images("train", seed=5))
    assert torch.equal(test.images, expected_images("test", seed=5))
    assert len(caught) == 1  # once, not on every load
    message = str(caught[0].message)
    assert "cannot be written" in message and "set GMLIB_CACHE" in message
    assert network.requests == []
    raw = data.cache_dir() / "fashion-mnist" / "raw"
    if raw.is_dir():  # nothing half-written is left behind
        assert not [p for p in raw.iterdir() if p.name.endswith(".part")]


def test_unwritable_cache_and_no_system_folder_reports_both(
    fake_fashion, tmp_path, monkeypatch
):
    spec, system, network, _ = fake_fashion
    network.offline = True
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("GMLIB_CACHE", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load("fashion-mnist", split="test")
    message = str(err.value)
    assert str(system) in message and "not present" in message
    assert "download" in message and "a-file" in message


def test_truncated_gz_in_the_system_folder_is_not_taken_for_an_unwritable_cache(
    fake_fashion, recwarn
):
    spec, system, network, _ = fake_fashion
    write_idx(system, seed=5, gz=True)
    path = system / f"{data.FILES['train'][0]}.gz"
    path.write_bytes(path.read_bytes()[:-20])
    loaded = data.load("fashion-mnist", split="train")
    assert loaded.source.startswith("cache (downloaded)")
    assert torch.equal(loaded.images, expected_images("train", seed=3))
    assert not [w for w in recwarn if "GMLIB_CACHE" in str(w.message)]


# --- downloads ------------------------------------------------------------------------


def test_bad_download_is_dropped_and_the_next_mirror_tried(fake_fashion, monkeypatch):
    spec, system, network, gz = fake_fashion
    first, second = "https://first.test/fmnist/", "https://second.test/fmnist/"
    monkeypatch.setitem(
        data.DATASETS,
        "fashion-mnist",
        dataclasses.replace(spec, mirrors=(first, second)),
    )
    name = "t10k-images-idx3-ubyte.gz"
    network.files = {second + n: body for n, body in gz.items()}
    network.files[first + name] = flip(gz[name], len(gz[name]) // 2)  # same length
    loaded = data.load("fashion-mnist", split="test")
    assert torch.equal(loaded.images, expected_images("test", seed=3))
    assert first + name in network.requests and second + name in network.requests
    raw = data.cache_dir() / "fashion-mnist" / "raw"
    assert not list(raw.glob("*.gz"))  # neither the refused nor the good .gz is kept


def test_partial_download_left_by_a_killed_run_is_fetched_again(fake_fashion):
    spec, system, network, gz = fake_fashion
    raw = data.cache_dir() / "fashion-mnist" / "raw"
    raw.mkdir(parents=True)
    name = "t10k-images-idx3-ubyte.gz"
    (raw / name).write_bytes(gz[name][: len(gz[name]) // 2])
    (raw / f".{name[:-3]}.x1y2.part").write_bytes(b"half a decompressed file")
    loaded = data.load("fashion-mnist", split="test")
    assert loaded.source.startswith("cache (downloaded)")
    assert torch.equal(loaded.images, expected_images("test", seed=3))
    assert spec.mirrors[0] + name in network.requests
    assert (raw / name[:-3]).read_bytes() == idx_bytes("test", "images", seed=3)
