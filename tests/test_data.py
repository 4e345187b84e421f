"""The data chain: each source is faked with temporary folders; the download with a fake
network."""

import dataclasses
import gzip
import hashlib
import io
import os
import struct
import urllib.error
import urllib.request
from pathlib import Path

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
