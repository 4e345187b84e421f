"""A student's install is complete: what Colab's setup cell installs, plus what Colab
ships, covers every import of gmlib and of the notebooks, and fights none of Colab's
packages."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shlex
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]

# Distributions that Google Colab's runtime preinstalls and that a notebook may import
# without gmlib declaring them (as `pip list` shows them in a Colab runtime; each has
# been there for years). Keep this list short: anything else a notebook imports must be
# a dependency of gmlib, so that `pip install "gmlib @ git+URL"` brings it.
COLAB_PREINSTALLED = {
    "ipython",
    "ipywidgets",
    "scikit-learn",
    "scipy",
    "pandas",
    "pillow",
}

# Packages whose version Colab's own front end depends on: gmlib must never make pip
# upgrade them (Colab's widget support is built for the ipywidgets it ships).
NEVER_DECLARE = {
    "ipywidgets",
    "ipython",
    "ipykernel",
    "jupyter",
    "notebook",
    "jupyterlab",
    "google-colab",
    "tornado",
}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        normalize(re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0])
        for dep in project["dependencies"]
    }


def top_level_imports(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def code_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def as_python(cell: str) -> str:
    """A code cell as IPython runs it (magics and shell escapes become calls)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(cell)


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> the files importing it (not the stdlib, not gmlib)."""
    found: dict[str, set[str]] = {}
    sources = [(p, p.read_text()) for p in sorted((ROOT / "gmlib").glob("*.py"))]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        sources += [(path, as_python(cell)) for cell in code_cells(path)]
    for path, source in sources:
        for name in top_level_imports(source):
            if name not in sys.stdlib_module_names and name != "gmlib":
                found.setdefault(name, set()).add(path.name)
    return found


def test_the_scan_sees_the_imports_it_must_see():
    found = third_party_imports()
    for name in ("torch", "torchvision", "matplotlib", "ipywidgets", "sklearn"):
        assert name in found, f"the scan missed {name}: it proves nothing"


def test_every_import_is_declared_by_gmlib_or_preinstalled_by_colab():
    distributions = importlib.metadata.packages_distributions()
    allowed = declared() | COLAB_PREINSTALLED
    problems = []
    for module, files in sorted(third_party_imports().items()):
        dists = {normalize(d) for d in distributions.get(module, [])}
        if not dists:
            problems.append(
                f"{module} (imported by {sorted(files)}) is not installed here"
            )
        elif not dists & allowed:
            problems.append(
                f"{module} (distribution {sorted(dists)}, imported by {sorted(files)}) "
                "is neither a dependency of gmlib in pyproject.toml nor preinstalled "
                "by Colab"
            )
    assert not problems, "\n".join(problems)


def test_gmlib_upgrades_none_of_colabs_own_packages():
    clash = declared() & NEVER_DECLARE
    assert not clash, (
        f"gmlib depends on {clash}: installing it in Colab would replace them"
    )


def test_the_setup_cell_installs_gmlib_and_nothing_else():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        installs = re.findall(r"%pip install (.*)", "\n".join(code_cells(path)))
        assert len(installs) == 1, (
            f"{path.name}: expected one %pip install, got {installs}"
        )
        packages = [a for a in shlex.split(installs[0]) if not a.startswith("-")]
        assert len(packages) == 1 and packages[0].startswith("gmlib @ git+"), (
            f"{path.name}: the setup cell installs {packages}, expected only gmlib"
        )
