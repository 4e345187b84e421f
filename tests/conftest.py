"""Shared fixtures: every test gets its own cache folder and a clean environment."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch, request):
    if request.node.get_closest_marker("site"):
        return  # the site test builds the book with the environment make test set
    monkeypatch.setenv("GMLIB_CACHE", str(tmp_path / "cache"))
    for name in ("GMLIB_DATA", "GMLIB_DEVICE", "GMLIB_ACCEL_ON_CPU"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GMLIB_PROGRESS", "0")


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny models (``pytestmark = pytest.mark.usefixtures(...)``): one
    thread spares OpenMP's per-operation overhead, and a second thread costs 10x when
    the other core is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
