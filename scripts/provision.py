"""Provide what `make test` and `make book` need beyond Python packages, then run them.

    python scripts/provision.py data browser mathjax -- python -m pytest ...
    python scripts/provision.py data -- jupyter-book build ...

Each named need is looked for first and provided only when it is missing:

- ``data``: Fashion-MNIST in a source of ``gmlib.data``'s chain (``$GMLIB_DATA``, the
  cache, Debian's ``/usr/share/datasets/fashion-mnist``); else the download (online),
  then Debian's ``dataset-fashion-mnist`` through apt.
- ``browser``: ``$GMLIB_CHROMIUM``; a Chromium or Chrome already installed (on the PATH
  or in Playwright's cache); Debian's ``chromium`` through apt; Playwright's own
  ``playwright install chromium`` (online).
- ``mathjax``: the npm package of the MathJax release the book loads from its CDN, which
  the site test serves to the browser in the CDN's place. It is fetched from the npm
  registry as a tarball and checked against its pinned SHA-512: no Node.js needed.

apt runs only where ``apt-get`` exists and we are root or ``sudo`` needs no password;
``GMLIB_INSTALL=0`` forbids every installer and download (only look). When something
cannot be provided, one message says what is missing, what was tried and the one command
that fixes it, and the exit status is 1: the command after ``--`` does not start.

On success the command after ``--`` replaces this process, with ``GMLIB_CHROMIUM`` and
``GMLIB_MATHJAX`` set to what was found. Standard library only: when everything is
present (the usual case) this takes a fraction of a second.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Fashion-MNIST, as gmlib.data looks for it (tests/test_provision.py checks they agree).
DATASET = "fashion-mnist"
DATASET_DIRS = ("fashion-mnist", "FashionMNIST/raw")  # under $GMLIB_DATA
DATA_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SYSTEM_DATA_DIRS = ("/usr/share/datasets/fashion-mnist",)
DATA_APT_PACKAGE = "dataset-fashion-mnist"

# gmlib.runtime.BUDGETS (tests/test_provision.py checks they agree): a mistyped
# GMLIB_BUDGET stops `make book` before anything is installed or executed, instead of
# failing in every notebook's setup cell.
BUDGETS = ("smoke", "cpu", "full")

# Browsers, most specific first. Ubuntu's chromium-browser is a snap launcher, which
# Playwright cannot always drive, so it comes after Google's Chrome.
BROWSER_NAMES = (
    "chromium",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
    "chromium-browser",
)
BROWSER_APT_PACKAGE = "chromium"

# MathJax from the npm registry: the tarball's SHA-512, as
# `npm view mathjax@V dist.integrity` prints it. A release not listed here is checked
# against the registry's own record.
MATHJAX_INTEGRITY = {
    "3.2.2": "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/"
    "O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
}
NPM_REGISTRY = "https://registry.npmjs.org"
MATHJAX_HOME = ROOT / "_build" / "mathjax"  # one folder per release


class Missing(Exception):
    """A need that could not be provided: what was tried, the command that fixes it."""

    def __init__(self, what: str, tried: list[str], fix: str):
        super().__init__(what)
        self.what, self.tried, self.fix = what, tried, fix


@dataclass
class Context:
    """What provisioning may do on this machine; tests build their own."""

    env: dict = field(default_factory=lambda: dict(os.environ))
    log: list[str] = field(default_factory=list)  # what was installed, for the summary
    data_tried: list[str] = field(default_factory=list)  # what failed before apt

    @property
    def may_install(self) -> bool:
        return self.env.get("GMLIB_INSTALL", "1").strip().lower() not in {
            "0",
            "no",
            "false",
        }

    def say(self, message: str) -> None:
        print(f"provision: {message}", file=sys.stderr, flush=True)


# --- running installers ---------------------------------------------------------------


def run(
    command: list[str], timeout: float, env: dict | None = None
) -> tuple[bool, str]:
    """Run ``command``; ``(succeeded, last lines of its output)``. Never raises."""
    try:
        proc = subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    output = (proc.stdout + proc.stderr).strip().splitlines()
    tail = " / ".join(line.strip() for line in output[-3:] if line.strip())
    return proc.returncode == 0, tail or f"exit status {proc.returncode}"


def apt_prefix(ctx: Context) -> tuple[list[str] | None, str]:
    """The prefix that runs apt-get as root, or None and the reason it cannot."""
    if not ctx.may_install:
        return None, "not tried (GMLIB_INSTALL=0)"
    if shutil.which("apt-get", path=ctx.env.get("PATH")) is None:
        return None, "not tried (no apt-get on this system)"
    if os.geteuid() == 0:
        return [], ""
    if shutil.which("sudo", path=ctx.env.get("PATH")) is None:
        return None, "not tried (not root, and no sudo)"
    ok, _ = run(["sudo", "-n", "true"], timeout=10, env=ctx.env)
    if not ok:
        return None, "not tried (not root, and sudo asks for a password)"
    return ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"], ""  # sudo drops env


def apt_install(ctx: Context, packages: list[str]) -> tuple[bool, str]:
    """``apt-get update``, ``apt-get install -y packages``; ``(ok, what happened)``."""
    prefix, why_not = apt_prefix(ctx)
    if prefix is None:
        return False, why_not
    ctx.say(f"installing {' '.join(packages)} with apt-get (a minute or two) ...")
    env = {**ctx.env, "DEBIAN_FRONTEND": "noninteractive"}
    ok, out = run([*prefix, "apt-get", "update", "-qq"], timeout=600, env=env)
    if not ok:
        return False, f"apt-get update failed: {out}"
    install = [*prefix, "apt-get", "install", "-y", "-qq", *packages]
    ok, out = run(install, timeout=1200, env=env)
    if not ok:
        return False, f"apt-get install failed: {out}"
    ctx.log.append(f"installed {' '.join(packages)} (apt)")
    return True, "installed"


# --- data -----------------------------------------------------------------------------


def home(env: dict) -> Path:
    return Path(env.get("HOME") or Path.home())


def cache_dir(env: dict) -> Path:
    """gmlib.data.cache_dir(), without importing gmlib (and torch)."""
    return Path(env.get("GMLIB_CACHE") or home(env) / ".cache" / "gmlib")


def holds_dataset(folder: Path) -> bool:
    return all(
        (folder / stem).is_file() or (folder / f"{stem}.gz").is_file()
        for stem in DATA_FILES
    )


def find_data(env: dict) -> Path | None:
    """The first folder of the chain that holds all four files, or None."""
    folders = []
    if env.get("GMLIB_DATA", "").strip():
        root = Path(env["GMLIB_DATA"].strip()).expanduser()
        folders += [root / sub for sub in DATASET_DIRS]
    folders.append(cache_dir(env) / DATASET / "raw")
    folders += [Path(d) for d in SYSTEM_DATA_DIRS]
    return next((f for f in folders if holds_dataset(f)), None)


def download_data(ctx: Context) -> tuple[bool, str]:
    """gmlib's own download into the cache (checksummed); ``(ok, what happened)``."""
    if not ctx.may_install:
        return False, "not tried (GMLIB_INSTALL=0)"
    ctx.say(f"downloading {DATASET} into {cache_dir(ctx.env)} ...")
    code = (  # on failure, print only the download's line of gmlib's error
        "import sys; from gmlib import data\n"
        "try:\n"
        f"    data.load({DATASET!r}, split='train')\n"
        f"    data.load({DATASET!r}, split='test')\n"
        "except data.DatasetNotFoundError as exc:\n"
        "    lines = [line for line in str(exc).splitlines()\n"
        "             if line.startswith('  - download')]\n"
        "    sys.exit(lines[0].strip()[2:] if lines else str(exc))\n"
    )
    ok, out = run([sys.executable, "-c", code], timeout=900, env=ctx.env)
    return ok, "downloaded" if ok else f"failed ({out[:300]})"


def ensure_data(ctx: Context, apt_wanted: list[str]) -> Path | None:
    """The data folder, or None after queuing the apt package (``apt_wanted``)."""
    found = find_data(ctx.env)
    if found:
        return found
    ok, how = download_data(ctx)
    ctx.data_tried.append(f"download (gmlib.data.load): {how}")
    found = find_data(ctx.env) if ok else None
    if found:
        ctx.log.append(f"downloaded {DATASET}")
        return found
    apt_wanted.append(DATA_APT_PACKAGE)
    return None


def data_missing(ctx: Context, apt_result: str) -> Missing:
    where = ", ".join(
        [
            "$GMLIB_DATA" + (" (not set)" if not ctx.env.get("GMLIB_DATA") else ""),
            str(cache_dir(ctx.env) / DATASET / "raw"),
            *SYSTEM_DATA_DIRS,
        ]
    )
    tried = [f"the data chain ({where}): no folder holds the four files"]
    tried += ctx.data_tried
    tried.append(f"apt-get install {DATA_APT_PACKAGE}: {apt_result}")
    if shutil.which("apt-get", path=ctx.env.get("PATH")):
        fix = f"sudo apt-get install {DATA_APT_PACKAGE}"
    else:
        fix = (
            "connect to the internet and run this again, or set GMLIB_DATA to a folder "
            f"holding {DATASET}/ with the four IDX files"
        )
    return Missing(f"Fashion-MNIST ({DATASET})", tried, fix)


# --- browser --------------------------------------------------------------------------


def playwright_browsers(env: dict) -> list[Path]:
    """Chromium executables that ``playwright install chromium`` put in its cache."""
    base = env.get("PLAYWRIGHT_BROWSERS_PATH") or home(env) / ".cache" / "ms-playwright"
    patterns = (
        "chromium-*/chrome-linux*/chrome",
        "chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium",
        "chromium-*/chrome-win*/chrome.exe",
    )
    return sorted(
        (p for pattern in patterns for p in Path(base).glob(pattern)), reverse=True
    )


def installed_browsers(env: dict) -> list[Path]:
    names = [shutil.which(name, path=env.get("PATH")) for name in BROWSER_NAMES]
    return [Path(n) for n in names if n] + playwright_browsers(env)


def runs(browser: Path) -> bool:
    return os.access(browser, os.X_OK) and browser.is_file()


def ensure_browser(ctx: Context, apt_wanted: list[str]) -> Path | None:
    """A browser executable, or None after queuing the apt package. Raises Missing when
    ``$GMLIB_CHROMIUM`` names something that is not an executable."""
    given = ctx.env.get("GMLIB_CHROMIUM", "").strip()
    if given:
        path = Path(shutil.which(given, path=ctx.env.get("PATH")) or given).expanduser()
        if runs(path):
            return path
        raise Missing(
            "a browser for the site test",
            [f"$GMLIB_CHROMIUM={given}: not an executable file"],
            "unset GMLIB_CHROMIUM (make test then finds or installs a browser), "
            "or point it at a Chrome or Chromium executable",
        )
    for path in installed_browsers(ctx.env):
        if runs(path):
            return path
    apt_wanted.append(BROWSER_APT_PACKAGE)
    return None


def playwright_install(ctx: Context) -> tuple[Path | None, str]:
    if not ctx.may_install:
        return None, "not tried (GMLIB_INSTALL=0)"
    ctx.say("downloading Playwright's Chromium ...")
    command = [sys.executable, "-m", "playwright", "install", "chromium"]
    ok, out = run(command, timeout=900, env=ctx.env)
    found = [p for p in playwright_browsers(ctx.env) if runs(p)]
    if ok and found:
        ctx.log.append("installed Playwright's chromium")
        return found[0], "installed"
    return None, f"failed ({out[:300]})"


def browser_missing(ctx: Context, apt_result: str, playwright_result: str) -> Missing:
    tried = [
        "$GMLIB_CHROMIUM: not set",
        f"installed browsers: none of {', '.join(BROWSER_NAMES)} on the PATH, "
        "none in Playwright's cache",
        f"apt-get install {BROWSER_APT_PACKAGE}: {apt_result}",
        f"playwright install chromium: {playwright_result}",
    ]
    if shutil.which("apt-get", path=ctx.env.get("PATH")):
        fix = f"sudo apt-get install {BROWSER_APT_PACKAGE}"
    else:
        fix = f"{sys.executable} -m playwright install chromium   (needs the internet)"
    fix += ", or set GMLIB_CHROMIUM to a Chrome or Chromium executable"
    return Missing("a browser for the site test (Chromium or Chrome)", tried, fix)


# --- MathJax --------------------------------------------------------------------------


def mathjax_version() -> str:
    """The release the book loads: the version in ``_config.yml``'s ``mathjax_path``."""
    text = (ROOT / "_config.yml").read_text()
    match = re.search(r"mathjax_path:\s*\S*mathjax@([0-9][^/\s]*)/", text)
    if not match:
        raise Missing(
            "MathJax for the site test",
            ["_config.yml: no mathjax_path of the form .../mathjax@<version>/..."],
            "set sphinx.config.mathjax_path in _config.yml to jsDelivr's npm URL",
        )
    return match.group(1)


def mathjax_folder(version: str) -> Path:
    return MATHJAX_HOME / version / "mathjax"


def has_mathjax(folder: Path, version: str) -> bool:
    try:
        return (
            json.loads((folder / "package.json").read_text()).get("version") == version
        )
    except (OSError, ValueError):
        return False


def integrity(version: str) -> str:
    """The tarball's ``sha512-...`` integrity: pinned, else the registry's record."""
    if version in MATHJAX_INTEGRITY:
        return MATHJAX_INTEGRITY[version]
    with urllib.request.urlopen(f"{NPM_REGISTRY}/mathjax/{version}", timeout=60) as r:
        return json.load(r)["dist"]["integrity"]


def fetch_mathjax(version: str, folder: Path) -> None:
    """Download the npm tarball, check its SHA-512, unpack it into ``folder``
    atomically."""
    expected = integrity(version)
    url = f"{NPM_REGISTRY}/mathjax/-/mathjax-{version}.tgz"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        tarball = Path(tmp) / "mathjax.tgz"
        digest = hashlib.sha512()
        with (
            urllib.request.urlopen(url, timeout=60) as response,
            open(tarball, "wb") as f,
        ):
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                f.write(chunk)
        got = "sha512-" + base64.b64encode(digest.digest()).decode()
        if got != expected:
            raise OSError(
                f"{url}: checksum mismatch (got {got[:24]}..., expected "
                f"{expected[:24]}...)"
            )
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                name = Path(member.name)
                if (
                    name.is_absolute()
                    or ".." in name.parts
                    or not (member.isfile() or member.isdir())
                ):
                    raise OSError(f"{url}: unexpected entry {member.name!r}")
            tar.extractall(tmp)
        unpacked = Path(tmp) / "package"  # npm tarballs hold one folder, package/
        if not has_mathjax(unpacked, version):
            raise OSError(f"{url}: no package.json of version {version} inside")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(unpacked, folder)


def ensure_mathjax(ctx: Context) -> Path:
    version = mathjax_version()
    given = ctx.env.get("GMLIB_MATHJAX", "").strip()
    if given and has_mathjax(Path(given), version):
        return Path(given)
    folder = mathjax_folder(version)
    if has_mathjax(folder, version):
        return folder
    tried = [
        "$GMLIB_MATHJAX: "
        + (f"{given} is not MathJax {version}" if given else "not set"),
        f"{folder}: empty",
    ]
    if not ctx.may_install:
        tried.append("the npm registry: not tried (GMLIB_INSTALL=0)")
    else:
        ctx.say(f"downloading MathJax {version} from {NPM_REGISTRY} ...")
        try:
            fetch_mathjax(version, folder)
        except Exception as exc:  # network errors and bad tarballs alike
            tried.append(f"the npm registry: {exc}")
        else:
            ctx.log.append(f"downloaded MathJax {version}")
            return folder
    raise Missing(
        f"MathJax {version} for the site test",
        tried,
        f"connect to the internet and run this again, or unpack the npm package "
        f"mathjax@{version} into {folder}",
    )


# --- all together ---------------------------------------------------------------------

NEEDS = ("data", "browser", "mathjax")


def provision(needs: list[str], ctx: Context) -> dict[str, str]:
    """Provide every need; the environment variables that point at what was found.
    Raises ``Missing`` for the first need that nothing could provide (all listed)."""
    extra: dict[str, str] = {}
    problems: list[Missing] = []
    apt_wanted: list[str] = []
    browser = None
    if "data" in needs:
        ensure_data(ctx, apt_wanted)
    if "browser" in needs:
        try:
            browser = ensure_browser(ctx, apt_wanted)
        except Missing as exc:
            problems.append(exc)
    if "mathjax" in needs:
        try:
            extra["GMLIB_MATHJAX"] = str(ensure_mathjax(ctx))
        except Missing as exc:
            problems.append(exc)
    apt_result = ""
    if apt_wanted:
        _, apt_result = apt_install(ctx, apt_wanted)
    # What was queued for apt was not found before; look again, then fall back.
    if DATA_APT_PACKAGE in apt_wanted and find_data(ctx.env) is None:
        problems.append(data_missing(ctx, apt_result))
    if BROWSER_APT_PACKAGE in apt_wanted:
        browser = next((p for p in installed_browsers(ctx.env) if runs(p)), None)
        if browser is None:
            browser, pw_result = playwright_install(ctx)
            if browser is None:
                problems.append(browser_missing(ctx, apt_result, pw_result))
    if browser is not None:
        extra["GMLIB_CHROMIUM"] = str(browser)
    if problems:
        raise MissingAll(problems)
    return extra


class MissingAll(Exception):
    def __init__(self, problems: list[Missing]):
        super().__init__(", ".join(p.what for p in problems))
        self.problems = problems

    def message(self, target: str) -> str:
        n = len(self.problems)
        count = "1 thing is" if n == 1 else f"{n} things are"
        lines = [f"{target} cannot start: {count} missing.", ""]
        for p in self.problems:
            lines.append(f"Missing: {p.what}. Tried, in order:")
            lines += [f"  - {t}" for t in p.tried]
            lines += ["Fix it with:", f"  {p.fix}", ""]
        return "\n".join(lines).rstrip()


def main(argv: list[str]) -> int:
    if "--" in argv:
        cut = argv.index("--")
        needs, command = argv[:cut], argv[cut + 1 :]
    else:
        needs, command = argv, []
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        print(
            f"provision: unknown need(s) {unknown}; expected some of {list(NEEDS)}",
            file=sys.stderr,
        )
        return 2
    target = "make " + ("test" if "browser" in needs else "book")
    budget = os.environ.get("GMLIB_BUDGET", "").strip().lower()
    if budget and budget not in BUDGETS:
        print(
            f"{target} cannot start: GMLIB_BUDGET={os.environ['GMLIB_BUDGET']!r} is "
            f"not a budget; expected one of {', '.join(BUDGETS)} "
            "(or unset: full with a GPU, else cpu)",
            file=sys.stderr,
        )
        return 2
    ctx = Context()
    start = time.perf_counter()
    try:
        extra = provision(needs, ctx)
    except MissingAll as exc:
        print("\n" + exc.message(target) + "\n", file=sys.stderr)
        return 1
    if ctx.log:
        elapsed = time.perf_counter() - start
        ctx.say(f"{'; '.join(ctx.log)} (in {elapsed:.0f} s)")
    if not command:
        for key, value in extra.items():
            print(f"{key}={value}")
        return 0
    os.environ.update(extra)
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
