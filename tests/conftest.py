"""Shared fixtures: every test gets its own cache folder and a clean environment."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch, request):
    if request.node.get_closest_marker("site"):
        return  # the site test builds the book with the environment make test set
    monkeypatch.setenv("GMLIB_CACHE", str(tmp_path / "cache"))
    for name in ("GMLIB_DATA", "GMLIB_DEVICE", "GMLIB_ACCEL_ON_CPU"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GMLIB_PROGRESS", "0")
