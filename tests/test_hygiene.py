"""Every notebook is in the book, has the setup cell, is stored clean and runs on
python3."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CHECKED = "nbval-check-output"
# chapters that have landed; each new one is added here
EXPECTED = [
    "00_introduction",
    "01_autoencoders",
    "02_pixelcnn",
    "03_vae",
    "04_gan",
    "05_diffusion",
    "06_comparison",
]


def toc_files(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        if "file" in node:
            found.append(node["file"])
        if "root" in node:
            found.append(node["root"])
        for value in node.values():
            found += toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += toc_files(item)
    return found


def repository_url() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def test_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS][: len(EXPECTED)] == EXPECTED


def test_toc_lists_every_notebook_and_only_existing_files():
    files = toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in files, f"{nb.name} is missing from _toc.yml"
    for entry in files:
        assert any(
            (ROOT / f"{entry}{ext}").exists() for ext in ("", ".md", ".ipynb")
        ), entry


def test_numbered_names():
    for nb in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+", nb.stem), nb.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean_and_has_the_setup_cell(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert nb["metadata"]["kernelspec"]["language"] == "python"
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown" and "".join(
        cells[0]["source"]
    ).startswith("# ")
    code = [c for c in cells if c["cell_type"] == "code"]
    setup = "".join(code[0]["source"])
    assert 'if "google.colab" in sys.modules' in setup, (
        "the first code cell must be the setup cell"
    )
    urls = re.findall(r"^REPOSITORY = \"([^\"]+)\"$", setup, re.M)
    assert urls == [repository_url()], (
        f"setup cell's REPOSITORY is {urls}, _config.yml says {repository_url()}"
    )
    assert '%pip install -q "gmlib @ git+{REPOSITORY}"' in setup
    assert "gm.settings(" in setup and "seed_everything" in setup
    for i, cell in enumerate(code):
        tags = cell.get("metadata", {}).get("tags", [])
        if CHECKED in tags:
            assert cell["outputs"], (
                f"code cell {i} is checked by nbval but stores no output"
            )
        else:
            assert not cell["outputs"], f"code cell {i} stores outputs (strip them)"
            assert cell["execution_count"] is None, (
                f"code cell {i} has an execution count"
            )
        if "nbval-skip" in tags:
            assert re.search(r"#.*(because|why|skip)", "".join(cell["source"]), re.I), (
                f"code cell {i} is skipped by nbval without a comment saying why"
            )


def test_every_address_of_the_repository_agrees_with_config():
    """GitHub, Colab and Pages addresses anywhere in the repository name the repository
    of _config.yml (``make repository URL=...`` rewrites them all)."""
    import repository  # scripts/repository.py (pytest's pythonpath)

    slug = "/".join(repository.configured(ROOT))
    found = repository.addresses(ROOT)
    wrong = [f"{name}:{line}: {other}" for name, line, other in found if other != slug]
    assert not wrong, f"addresses other than {slug} (_config.yml):\n" + "\n".join(wrong)
    files = {name for name, _, _ in found}
    expected = {"_config.yml", "README.md", "book/setup.md"}
    expected |= {f"notebooks/{nb.name}" for nb in NOTEBOOKS}
    assert expected <= files, f"no address of the repository in {expected - files}"
