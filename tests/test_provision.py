"""scripts/provision.py: what `make test` and `make book` provide before they start.

Installers and downloads are faked (a fake apt-get on a private PATH, a fake urlopen),
so these tests neither need root nor touch the network.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import provision  # scripts/provision.py (pytest's pythonpath)
import pytest

SCRIPT = Path(provision.__file__)


def run_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """scripts/provision.py with ``args``, in this process's environment without what
    `make test` provided, plus ``env``."""
    outside = {k: v for k, v in os.environ.items() if not k.startswith("GMLIB_")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env={**outside, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def executable(path: Path, body: str = "exit 0") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def put_dataset(folder: Path, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem in provision.DATA_FILES:
        (folder / (stem + (".gz" if gz else ""))).write_bytes(b"x")
    return folder


def put_mathjax(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps({"version": version}))
    return folder


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine with nothing provided: an empty PATH of its own, HOME, cache and system
    data folder, and no network (urlopen fails, gmlib's download fails)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path / "home"),
        "GMLIB_CACHE": str(tmp_path / "cache"),
    }
    monkeypatch.setattr(provision, "SYSTEM_DATA_DIRS", (str(tmp_path / "system"),))
    monkeypatch.setattr(provision, "MATHJAX_HOME", tmp_path / "mathjax")
    calls: list[str] = []
    real_run = provision.run

    def run(command, timeout, env=None):  # Playwright's download fails, as offline
        if command[1:4] == ["-m", "playwright", "install"]:
            calls.append("playwright")
            return False, "Download failure (faked: offline)"
        return real_run(command, timeout, env)

    def offline(url, *args, **kwargs):
        calls.append(f"urlopen {url}")
        raise OSError("network is unreachable")

    def no_download(ctx):
        calls.append("download")
        return False, "failed (network is unreachable)"

    monkeypatch.setattr(provision.urllib.request, "urlopen", offline)
    monkeypatch.setattr(provision, "download_data", no_download)
    monkeypatch.setattr(provision, "run", run)
    monkeypatch.setattr(provision.os, "geteuid", lambda: 0)
    return tmp_path, env, calls


def test_the_script_looks_where_gmlib_looks(monkeypatch, tmp_path):
    from gmlib import data

    spec = data.DATASETS[provision.DATASET]
    assert provision.DATA_FILES == data.FILES["train"] + data.FILES["test"]
    assert provision.SYSTEM_DATA_DIRS == spec.system_dirs
    assert provision.DATA_APT_PACKAGE == spec.apt_package
    assert provision.DATASET_DIRS == (provision.DATASET, f"{spec.torchvision_name}/raw")
    monkeypatch.setenv("GMLIB_CACHE", str(tmp_path / "here"))
    assert provision.cache_dir(dict(os.environ)) == data.cache_dir()
    monkeypatch.delenv("GMLIB_CACHE")
    assert provision.cache_dir(dict(os.environ)) == data.cache_dir()


@pytest.mark.parametrize("gz", [False, True])
def test_find_data_takes_the_first_source_of_the_chain(machine, gz):
    tmp, env, _ = machine
    assert provision.find_data(env) is None
    system = put_dataset(tmp / "system", gz=gz)
    assert provision.find_data(env) == system
    cached = put_dataset(tmp / "cache" / "fashion-mnist" / "raw", gz=gz)
    assert provision.find_data(env) == cached
    env["GMLIB_DATA"] = str(tmp / "mine")
    given = put_dataset(tmp / "mine" / "FashionMNIST" / "raw", gz=gz)
    assert provision.find_data(env) == given
    (given / (provision.DATA_FILES[2] + (".gz" if gz else ""))).unlink()  # incomplete
    assert provision.find_data(env) == cached


def test_when_everything_is_present_nothing_is_installed(machine, monkeypatch):
    tmp, env, calls = machine
    put_dataset(tmp / "system")
    chromium = executable(tmp / "bin" / "chromium")
    version = provision.mathjax_version()
    put_mathjax(provision.mathjax_folder(version), version)
    monkeypatch.setattr(
        provision, "run", lambda *a, **k: calls.append(a) or (False, "")
    )
    extra = provision.provision(
        ["data", "browser", "mathjax"], provision.Context(env=env)
    )
    assert calls == []
    assert extra == {
        "GMLIB_CHROMIUM": str(chromium),
        "GMLIB_MATHJAX": str(provision.mathjax_folder(version)),
    }


def test_a_broken_gmlib_chromium_stops_at_once_with_one_message(machine, tmp_path):
    _, env, _ = machine
    put_mathjax(tmp_path / "mj", provision.mathjax_version())
    env.update(
        GMLIB_CHROMIUM=str(tmp_path / "nowhere"),
        GMLIB_MATHJAX=str(tmp_path / "mj"),
        GMLIB_DATA=str(tmp_path / "d"),
    )
    put_dataset(tmp_path / "d" / "fashion-mnist")
    marker = tmp_path / "ran"
    env["PATH"] += ":/usr/bin:/bin"  # for touch
    proc = run_script(env, "data", "browser", "mathjax", "--", "touch", str(marker))
    assert proc.returncode == 1
    assert not marker.exists(), (
        "the command after -- ran although the browser is missing"
    )
    assert proc.stderr.count("Missing:") == 1
    assert (
        f"$GMLIB_CHROMIUM={tmp_path / 'nowhere'}: not an executable file" in proc.stderr
    )
    assert "Fix it with:" in proc.stderr


def test_success_runs_the_command_with_what_was_found(machine, tmp_path):
    _, env, _ = machine
    chromium = executable(tmp_path / "bin" / "chromium")
    put_mathjax(tmp_path / "mj", provision.mathjax_version())
    put_dataset(tmp_path / "d" / "fashion-mnist")
    env.update(GMLIB_MATHJAX=str(tmp_path / "mj"), GMLIB_DATA=str(tmp_path / "d"))
    show = "import os; print(os.environ['GMLIB_CHROMIUM'], os.environ['GMLIB_MATHJAX'])"
    proc = run_script(
        env, "data", "browser", "mathjax", "--", sys.executable, "-c", show
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(chromium), str(tmp_path / "mj")]


def fake_apt(tmp: Path, log: Path) -> None:
    """An apt-get that logs its arguments; `install` puts chromium on the PATH and the
    dataset into the system folder, as Debian's packages do."""
    data = " ".join(f"{tmp}/system/{stem}.gz" for stem in provision.DATA_FILES)
    executable(
        tmp / "bin" / "apt-get",
        f"""
PATH=/usr/bin:/bin
echo "$@" >> {log}
case "$*" in *install*)
  case "$*" in *chromium*)
    printf '#!/bin/sh\\n' > {tmp}/bin/chromium; chmod +x {tmp}/bin/chromium;; esac
  case "$*" in *dataset-fashion-mnist*)
    mkdir -p {tmp}/system; touch {data};;
  esac;;
esac""",
    )


def test_download_first_then_one_apt_call_for_everything(machine):
    tmp, env, calls = machine
    log = tmp / "apt.log"
    fake_apt(tmp, log)
    version = provision.mathjax_version()
    put_mathjax(provision.mathjax_folder(version), version)
    extra = provision.provision(
        ["data", "browser", "mathjax"], provision.Context(env=env)
    )
    assert calls == ["download"], "the download is tried before apt, Playwright never"
    assert log.read_text().splitlines() == [
        "update -qq",
        "install -y -qq dataset-fashion-mnist chromium",
    ]
    assert extra["GMLIB_CHROMIUM"] == str(tmp / "bin" / "chromium")
    assert provision.find_data(env) == tmp / "system"


def test_without_apt_or_network_one_message_names_each_need_and_its_fix(machine):
    tmp, env, calls = machine
    with pytest.raises(provision.MissingAll) as caught:
        provision.provision(["data", "browser", "mathjax"], provision.Context(env=env))
    text = caught.value.message("make test")
    assert [p.what.split()[0] for p in caught.value.problems] == [
        "MathJax",
        "Fashion-MNIST",
        "a",
    ]
    assert text.startswith("make test cannot start: 3 things are missing.")
    assert "download (gmlib.data.load): failed (network is unreachable)" in text
    assert (
        "apt-get install dataset-fashion-mnist: not tried (no apt-get on this system)"
        in text
    )
    assert "playwright install chromium: failed (Download failure" in text
    assert [c.split()[0] for c in calls] == ["download", "urlopen", "playwright"]
    assert text.count("Fix it with:") == 3


def test_gmlib_install_0_forbids_every_installer(machine, monkeypatch):
    tmp, env, calls = machine
    fake_apt(tmp, tmp / "apt.log")
    env["GMLIB_INSTALL"] = "0"
    monkeypatch.setattr(
        provision, "run", lambda *a, **k: calls.append(a) or (False, "")
    )
    with pytest.raises(provision.MissingAll) as caught:
        provision.provision(["browser", "mathjax"], provision.Context(env=env))
    assert calls == [] and not (tmp / "apt.log").exists()
    assert caught.value.message("make test").count("not tried (GMLIB_INSTALL=0)") == 3


def test_apt_failing_falls_back_to_playwright(machine, monkeypatch):
    tmp, env, calls = machine
    env["PLAYWRIGHT_BROWSERS_PATH"] = str(tmp / "pw")
    executable(tmp / "bin" / "apt-get", "exit 100")
    real_run = provision.run

    def run(command, timeout, env=None):
        if command[1:4] == ["-m", "playwright", "install"]:
            calls.append("playwright")
            executable(tmp / "pw" / "chromium-1200" / "chrome-linux" / "chrome")
            return True, ""
        return real_run(command, timeout, env)  # the fake apt-get

    monkeypatch.setattr(provision, "run", run)
    extra = provision.provision(["browser"], provision.Context(env=env))
    assert calls == ["playwright"]
    assert extra["GMLIB_CHROMIUM"] == str(
        tmp / "pw" / "chromium-1200" / "chrome-linux" / "chrome"
    )


def npm_tarball(version: str, extra: dict[str, bytes] | None = None) -> bytes:
    files = {
        "package/package.json": json.dumps({"version": version}).encode(),
        "package/es5/tex-mml-chtml.js": b"window.MathJax = {};",
        **(extra or {}),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def sri(content: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(content).digest()).decode()


@pytest.mark.parametrize("case", ["good", "tampered", "escaping"])
def test_mathjax_comes_from_the_registry_checked(machine, monkeypatch, case):
    tmp, env, _ = machine
    version = "9.9.9"
    extra = {"../outside.js": b"x"} if case == "escaping" else None
    tarball = npm_tarball(version, extra)
    pinned = sri(tarball if case != "tampered" else tarball + b"!")
    monkeypatch.setattr(provision, "MATHJAX_INTEGRITY", {version: pinned})
    monkeypatch.setattr(provision, "mathjax_version", lambda: version)
    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        return io.BytesIO(tarball)

    monkeypatch.setattr(provision.urllib.request, "urlopen", urlopen)
    folder = provision.mathjax_folder(version)
    if case == "good":
        assert provision.ensure_mathjax(provision.Context(env=env)) == folder
        assert (folder / "es5" / "tex-mml-chtml.js").is_file()
        assert asked == [f"{provision.NPM_REGISTRY}/mathjax/-/mathjax-{version}.tgz"]
    else:
        with pytest.raises(provision.Missing) as caught:
            provision.ensure_mathjax(provision.Context(env=env))
        reason = "checksum mismatch" if case == "tampered" else "unexpected entry"
        assert reason in caught.value.tried[-1]
        assert not folder.exists()
        assert not (folder.parent.parent / "outside.js").exists()


def test_unknown_needs_are_refused():
    proc = run_script({}, "gpu", "--", "true")
    assert proc.returncode == 2 and "unknown need" in proc.stderr


def test_a_mistyped_budget_stops_before_anything_runs(tmp_path):
    import gmlib.runtime

    assert provision.BUDGETS == gmlib.runtime.BUDGETS
    marker = tmp_path / "ran"
    proc = run_script({"GMLIB_BUDGET": "fast"}, "data", "--", "touch", str(marker))
    assert proc.returncode == 2
    assert "GMLIB_BUDGET='fast' is not a budget" in proc.stderr
    assert "smoke, cpu, full" in proc.stderr
    assert not marker.exists()
