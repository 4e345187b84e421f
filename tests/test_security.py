"""What a stranger's file or a compromised dependency could do, and why it cannot.

- A checkpoint is data: gmlib loads it with ``weights_only=True``, so a pickle that
  would run code is refused (and retrained), and no ``torch.load`` in the code base
  does otherwise.
- The GitHub workflows hold the least permissions they need and run actions pinned to
  a commit, so a moved tag cannot change what runs with the repository's token.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import gmlib as gm

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


class _Planted:
    """Unpickling this creates ``marker``: a stand-in for any code an attacker runs."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused_and_retrained(tmp_path):
    settings = {"width": 3}
    path = gm.checkpoints.checkpoint_path("victim", settings, directory=tmp_path)
    marker = tmp_path / "code-ran"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": gm.checkpoints.FORMAT,
            "name": "victim",
            "settings": settings,
            "state_dict": _Planted(marker),
            "history": {},
        },
        path,
    )
    # the payload is live: a plain unpickling runs it
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()

    trained = []

    def train(model):
        trained.append(True)
        return gm.History()

    with pytest.warns(
        UserWarning, match="unusable.*could run as code.*weights_only=True.*retraining"
    ):
        model, _ = gm.train_or_load(
            "victim",
            settings,
            build=lambda: nn.Linear(3, 1),
            train=train,
            directory=tmp_path,
            verbose=False,
        )
    assert not marker.exists(), "loading the checkpoint ran its code"
    assert trained == [True]
    # the retrained model replaced the planted file with plain tensors
    payload = torch.load(path, weights_only=True)
    assert set(payload["state_dict"]) == {"weight", "bias"}


def _torch_load_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "load"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "torch"
        ):
            yield node


def test_every_torch_load_in_the_code_base_is_weights_only():
    sources = [*ROOT.glob("gmlib/*.py"), *ROOT.glob("bench/*.py")]
    sources += [*ROOT.glob("scripts/*.py")]
    calls = 0
    for source in sources:
        for call in _torch_load_calls(ast.parse(source.read_text())):
            calls += 1
            flags = {k.arg: k.value for k in call.keywords}
            value = flags.get("weights_only")
            assert isinstance(value, ast.Constant) and value.value is True, (
                f"{source.name}:{call.lineno} calls torch.load without "
                "weights_only=True"
            )
    assert calls >= 2  # gmlib.checkpoints and bench/sampling.py load checkpoints
    notebooks = "".join(p.read_text() for p in ROOT.glob("notebooks/*.ipynb"))
    assert "torch.load(" not in notebooks  # chapters load through gm.train_or_load


@pytest.fixture(params=WORKFLOWS, ids=lambda p: p.name)
def workflow(request) -> tuple[str, dict]:
    text = request.param.read_text()
    return text, yaml.safe_load(text)


def test_workflows_pin_every_action_to_a_commit(workflow):
    text, _ = workflow
    uses = re.findall(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", text, flags=re.M)
    assert uses, "a workflow without actions"
    for action, rest in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), (
            f"{action}: pin the action to a full commit SHA, not a tag or branch"
        )
        assert re.search(r"#\s*v\d+\.\d+\.\d+", rest), (
            f"{action}: say which release the SHA is (a '# vX.Y.Z' comment)"
        )


WRITE_SCOPES_NEEDED = {"deploy": {"pages", "id-token"}}


def test_workflows_hold_the_least_permissions(workflow):
    _, spec = workflow
    assert spec.get("permissions") == {"contents": "read"}, (
        "the workflow-wide token must only read the repository"
    )
    for name, job in spec["jobs"].items():
        granted = job.get("permissions", {})
        writes = {scope for scope, level in granted.items() if level == "write"}
        assert writes <= WRITE_SCOPES_NEEDED.get(name, set()), (
            f"job {name!r} asks for write access it does not need: {sorted(writes)}"
        )
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, (
                    f"job {name!r}: checkout keeps the token in .git/config"
                )
    # triggers never hand the token of this repository to a fork's code
    triggers = spec.get("on", spec.get(True, {}))
    assert "pull_request_target" not in triggers
