"""scripts/repository.py (`make repository URL=...`): a fork retargets every address."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import repository  # scripts/repository.py (pytest's pythonpath)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fork() -> tuple[str, str]:
    """A repository other than the configured one (which may itself be a fork)."""
    configured = repository.configured(ROOT)
    return (
        ("someone", "course")
        if configured != ("someone", "course")
        else (
            "another-owner",
            "fork",
        )
    )


@pytest.fixture
def clone(tmp_path) -> Path:
    """A copy of the repository's tracked files, as a fork's clone would hold them."""
    copy = tmp_path / "clone"
    for path in repository.text_files(ROOT):
        target = copy / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return copy


def test_retarget_changes_every_address_and_nothing_else(clone, fork):
    owner, repo_name = fork
    url = f"https://github.com/{owner}/{repo_name}"
    old = "/".join(repository.configured(clone))
    before = {p: p.read_text() for p in repository.text_files(clone)}
    changes = repository.retarget(url, clone)
    assert repository.configured(clone) == fork
    found = repository.addresses(clone)
    assert found and {slug for _, _, slug in found} == {f"{owner}/{repo_name}"}
    for path in repository.text_files(clone):
        assert old not in path.read_text(), f"{path} still names {old}"
    # Every file that named the old repository changed, and only those.
    changed = {
        str(p.relative_to(clone)) for p, t in before.items() if p.read_text() != t
    }
    assert changed == set(changes)
    for name in ("_config.yml", "book/setup.md", "README.md"):
        assert name in changes
    assert all(
        f"notebooks/{nb.name}" in changes
        for nb in (clone / "notebooks").glob("*.ipynb")
    )
    # Notebooks stay valid JSON, and their setup cells install the fork's gmlib.
    for nb in (clone / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        setup = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
        assert f'REPOSITORY = "{url}"' in setup
    clone_command = (clone / "book" / "setup.md").read_text()
    assert f"git clone {url}\ncd {repo_name}\n" in clone_command
    # A second run has nothing to do.
    assert repository.retarget(f"{url}.git", clone) == {}


def test_the_site_test_expects_the_forks_colab_link(clone, fork):
    owner, name = fork
    repository.retarget(f"https://github.com/{owner}/{name}/", clone)
    code = (
        "import sys; sys.path.insert(0, 'tests'); import test_site; "
        "print(test_site.colab_url('notebooks/01_autoencoders'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()
    assert out == (
        f"https://colab.research.google.com/github/{owner}/{name}/blob/main/"
        "notebooks/01_autoencoders.ipynb"
    )


@pytest.mark.parametrize(
    "url",
    [
        "",
        "github.com/a/b",
        "http://github.com/a/b",
        "https://gitlab.com/a/b",
        "https://github.com/a",
        "https://github.com/a/b/c",
        "https://github.com/-a/b",
        "https://github.com/a/b c",
    ],
)
def test_anything_but_a_github_repository_url_is_refused(url, clone):
    before = (clone / "_config.yml").read_text()
    with pytest.raises(
        ValueError,
        match=r"expected a GitHub repository URL like "
        r"https://github.com/<owner>/<repo>",
    ):
        repository.retarget(url, clone)
    assert (clone / "_config.yml").read_text() == before


@pytest.mark.parametrize(
    "url, slug",
    [
        ("https://github.com/Some-One/my.course", ("Some-One", "my.course")),
        ("https://github.com/a/b.git", ("a", "b")),
        ("https://github.com/a/b/", ("a", "b")),
    ],
)
def test_github_urls_are_parsed(url, slug):
    assert repository.parse(url) == slug


def test_make_repository_without_url_says_how():
    proc = subprocess.run(
        ["make", "-s", "repository"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "usage: make repository URL=https://github.com/<owner>/<repo>" in proc.stdout
