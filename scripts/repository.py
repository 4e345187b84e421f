"""Point the course at another GitHub repository: ``make repository URL=...``.

    python scripts/repository.py https://github.com/<owner>/<repo>

The repository's address appears in several places: ``_config.yml`` (the book's
repository and launch buttons), every notebook's setup cell (what Colab installs gmlib
from), the clone commands in ``book/setup.md`` and the README, and the published site's
address (``<owner>.github.io/<repo>``). This rewrites every one of them, in every
tracked text file, so a fork publishes its own copy without hunting for URLs.
``tests/test_hygiene.py`` checks that they all agree with ``_config.yml``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"  # a GitHub owner
REPO = r"[A-Za-z0-9._-]+"
URL = re.compile(rf"^https://github\.com/({NAME})/({REPO}?)(?:\.git)?/?$")
# Text files in which the address may appear (others, e.g. images, are left alone).
SUFFIXES = {
    ".md",
    ".ipynb",
    ".yml",
    ".yaml",
    ".toml",
    ".py",
    ".txt",
    ".cfg",
    ".html",
    "",
}
# Files whose addresses are examples of other repositories, not the course's own.
SKIP = {"scripts/repository.py", "tests/test_repository.py"}


def parse(url: str) -> tuple[str, str]:
    """``(owner, repo)`` of a GitHub URL; a clear ValueError for anything else."""
    match = URL.match(url.strip())
    if not match or match.group(2) in {"", ".", ".."}:
        raise ValueError(
            f"expected a GitHub repository URL like https://github.com/<owner>/<repo>, "
            f"got {url!r} (Colab opens notebooks from GitHub, so the book needs one)"
        )
    return match.group(1), match.group(2)


def configured(root: Path = ROOT) -> tuple[str, str]:
    """``(owner, repo)`` from ``repository.url`` in ``_config.yml``."""
    text = (root / "_config.yml").read_text()
    match = re.search(r"^repository:\s*\n(?:\s+.*\n)*?\s+url:\s*(\S+)", text, re.M)
    if not match:
        raise ValueError(f"{root / '_config.yml'} has no repository: url: entry")
    return parse(match.group(1))


def rewrites(
    old: tuple[str, str], new: tuple[str, str]
) -> list[tuple[re.Pattern, str]]:
    """``(pattern, replacement)`` for each form an address takes: on GitHub, in Colab's
    GitHub launcher, and on GitHub Pages (whose host is the owner in lower case)."""
    o, r = (re.escape(part) for part in old)
    # The name ends where a name cannot go on; ".git" and a full stop may follow it.
    end = r"(?=\.git(?![A-Za-z0-9._-])|\.(?![A-Za-z0-9._-])|[^A-Za-z0-9._-]|$)"
    return [
        (re.compile(rf"github\.com/{o}/{r}{end}"), f"github.com/{new[0]}/{new[1]}"),
        (
            re.compile(rf"colab\.research\.google\.com/github/{o}/{r}{end}"),
            f"colab.research.google.com/github/{new[0]}/{new[1]}",
        ),
        (
            re.compile(rf"{o}\.github\.io/{r}{end}", re.I),
            f"{new[0].lower()}.github.io/{new[1]}",
        ),
    ]


def text_files(root: Path = ROOT) -> list[Path]:
    """The repository's tracked text files (every file, outside git)."""
    try:
        names = subprocess.run(
            ["git", "-C", str(root), "ls-files"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        names = [
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and not {".git", ".venv", "_build"} & set(p.parts)
        ]
    return [
        root / n
        for n in names
        if Path(n).suffix in SUFFIXES and n not in SKIP and (root / n).is_file()
    ]


GITHUB_ANY = re.compile(
    rf"(?:github\.com/|colab\.research\.google\.com/github/)({NAME})/({REPO})"
    rf"|({NAME})\.github\.io/({REPO})",
    re.I,
)


def addresses(root: Path = ROOT) -> list[tuple[str, int, str]]:
    """Every ``owner/repo`` a GitHub, Colab or Pages address names, as
    ``(file, line number, owner/repo)``; for the hygiene test."""
    found = []
    for path in text_files(root):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for m in GITHUB_ANY.finditer(line):
                owner = m.group(1) or m.group(3)
                repo = re.sub(r"\.git$", "", (m.group(2) or m.group(4)).rstrip("."))
                found.append((str(path.relative_to(root)), number, f"{owner}/{repo}"))
    return found


def retarget(url: str, root: Path = ROOT) -> dict[str, int]:
    """Rewrite every address of the configured repository to ``url``; the number of
    changes per file."""
    new_owner, new_repo = parse(url)
    old_owner, old_repo = configured(root)
    changes: dict[str, int] = {}
    if (old_owner, old_repo) == (new_owner, new_repo):
        return changes
    old_clone = re.compile(rf"(\bcd\s+){re.escape(old_repo)}(?=\s|$)", re.M)
    for path in text_files(root):
        text = path.read_text()
        new, count = text, 0
        for pattern, replacement in rewrites(
            (old_owner, old_repo), (new_owner, new_repo)
        ):
            new, n = pattern.subn(lambda _: replacement, new)
            count += n
        if count and "git clone" in new:  # the folder the clone command makes
            new, n = old_clone.subn(rf"\g<1>{new_repo}", new)
            count += n
        if count:
            path.write_text(new)
            changes[str(path.relative_to(root))] = count
    return changes


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(
            "usage: make repository URL=https://github.com/<owner>/<repo>",
            file=sys.stderr,
        )
        return 2
    try:
        old = "/".join(configured())
        changes = retarget(argv[0])
    except ValueError as exc:
        print(f"make repository: {exc}", file=sys.stderr)
        return 2
    new = "/".join(parse(argv[0]))
    if not changes:
        print(f"The course already points at {new}: nothing to change.")
        return 0
    print(f"Pointed the course at {new} (it was {old}):")
    for name, count in sorted(changes.items()):
        print(f"  {name}: {count} address{'es' if count > 1 else ''}")
    print(
        "Next: commit, push to GitHub, and enable Pages (Settings > Pages > Source: "
        "GitHub Actions); see book/instructors.md, 'Publish your own copy'."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
