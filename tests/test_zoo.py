"""``gmlib.zoo`` repeats the recipes of chapters 02 to 05; these tests prove that each
chapter and the zoo agree at every budget.

For each model the test executes the chapter's own code: its setup cell, the
assignments of its earlier cells that the training cell uses (``data = ...``,
``device = ...``, ...) and its training cell up to the ``gm.train_or_load`` call, which
a recorder stands in for. It then checks the recorded recipe against the zoo's: the
same checkpoint key, the same initial weights and the same training call.
"""

import ast
import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch import nn

import gmlib
import gmlib as gm
from gmlib import zoo
from gmlib.checkpoints import checkpoint_path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {  # the chapter that trains and caches each model
    "pixelcnn-gated": "02_pixelcnn",
    "vae-mlp": "03_vae",
    "dcgan": "04_gan",
    "diffusion-unet": "05_diffusion",
}
# the names each training cell takes from the cells between the setup and itself
EARLIER = {
    "pixelcnn-gated": ("data", "device", "L"),
    "vae-mlp": ("data", "device"),
    "dcgan": ("data", "device"),
    "diffusion-unet": ("data", "device", "schedule"),
}
NAMES = pytest.mark.parametrize("name", list(NOTEBOOKS))
BUDGETS = pytest.mark.parametrize("budget", gm.runtime.BUDGETS)


# --- a chapter's recipe, from its own cells -------------------------------------------


class _Stop(Exception):
    """Raised in place of ``train_or_load``: the training cell stops there."""


@dataclass
class Recipe:
    """What a chapter passes to ``gm.train_or_load``."""

    name: str
    settings: dict[str, Any]
    build: Callable[[], nn.Module]
    train: Callable[[nn.Module], gm.History]


def code_cells(notebook: str) -> list[ast.Module]:
    """The notebook's code cells, parsed; IPython magic lines become ``pass``."""
    nb = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        lines = []
        for line in "".join(cell["source"]).splitlines():
            body = line.lstrip()
            lines.append(
                line[: len(line) - len(body)] + "pass" if body[:1] == "%" else line
            )
        cells.append(ast.parse("\n".join(lines)))
    return cells


def calls(node: ast.AST, function: str, first_arg: object = None) -> bool:
    """Whether ``node`` contains a call of ``function`` (as spelled, e.g.
    ``"gm.data.load"``), with the constant ``first_arg`` first if that is given."""
    for n in ast.walk(node):
        if isinstance(n, ast.Call) and ast.unparse(n.func) == function:
            first = n.args[0] if n.args else None
            if first_arg is None or (
                isinstance(first, ast.Constant) and first.value == first_arg
            ):
                return True
    return False


def assigned(statement: ast.stmt) -> set[str]:
    """The names a top-level assignment binds (empty for any other statement)."""
    if isinstance(statement, ast.Assign):
        targets = statement.targets
    elif isinstance(statement, ast.AnnAssign):
        targets = [statement.target]
    else:
        return set()
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def run(statements: list[ast.stmt], namespace: dict[str, Any], where: str) -> None:
    exec(
        compile(ast.Module(body=statements, type_ignores=[]), where, "exec"), namespace
    )


def chapter_recipe(name: str, budget: str, monkeypatch) -> Recipe:
    """Execute just enough of the chapter of ``name`` at ``budget`` to record the
    arguments of its ``gm.train_or_load(name, ...)`` call."""
    monkeypatch.setenv("GMLIB_BUDGET", budget)
    notebook = NOTEBOOKS[name]
    cells = code_cells(notebook)

    def the_cell(what: str, found: list[int]) -> int:
        assert len(found) == 1, f"{notebook}: {len(found)} cells with {what}"
        return found[0]

    setup = the_cell(
        "gm.settings(", [i for i, c in enumerate(cells) if calls(c, "gm.settings")]
    )
    data = next(i for i, c in enumerate(cells) if calls(c, "gm.data.load"))
    training = the_cell(
        f"gm.train_or_load({name!r}",
        [i for i, c in enumerate(cells) if calls(c, "gm.train_or_load", name)],
    )
    namespace: dict[str, Any] = {"__name__": f"chapter_{notebook}"}
    run(cells[setup].body, namespace, f"{notebook} setup cell")
    needed = set(EARLIER[name])
    for cell in cells[data:training]:
        picked = [s for s in cell.body if assigned(s) and assigned(s) <= needed]
        run(picked, namespace, f"{notebook} cells before training")
    assert needed <= namespace.keys(), (
        f"{notebook} never assigns {needed - namespace.keys()}"
    )

    body = cells[training].body
    stop = next(i for i, s in enumerate(body) if calls(s, "gm.train_or_load", name))
    recorded = {}

    def record(name, settings, *, build, train, **kwargs):
        recorded.update(name=name, settings=settings, build=build, train=train)
        raise _Stop

    monkeypatch.setattr(gmlib, "train_or_load", record)
    with pytest.raises(_Stop):
        run(body[: stop + 1], namespace, f"{notebook} training cell")
    return Recipe(**recorded)


# --- the training call, recorded instead of run ---------------------------------------


@dataclass
class FitCall:
    """One call of ``gmlib.train.fit`` or ``gmlib.gan.fit_gan``: the arguments passed,
    by parameter name."""

    function: str
    arguments: dict[str, Any]


def record_training(monkeypatch) -> list[FitCall]:
    """Replace the training loops (wherever the chapters and the zoo look them up) by
    recorders that return an empty History; the list fills with their calls."""
    recorded: list[FitCall] = []

    def recorder(real: Callable) -> Callable:
        signature = inspect.signature(real)

        def fake(*args, **kwargs) -> gm.History:
            bound = signature.bind(*args, **kwargs)
            recorded.append(FitCall(real.__name__, dict(bound.arguments)))
            if real.__name__ == "fit_gan":
                bound.apply_defaults()
                play_generator_steps(bound.arguments)
            return gm.History()

        return fake

    fit = recorder(gmlib.train.fit)
    monkeypatch.setattr(gmlib, "fit", fit)  # gm.fit, as the chapters call it
    monkeypatch.setattr(gmlib.train, "fit", fit)
    monkeypatch.setattr(gmlib.gan, "fit_gan", recorder(gmlib.gan.fit_gan))
    return recorded


def play_generator_steps(a: dict[str, Any]) -> None:
    """Call ``step_callback(step, generator)`` after every generator step, as
    ``fit_gan`` does, with the generator in eval mode.

    The generator does not train here, so it would draw the same images at every step:
    its output layer's bias is set to ``sin(step)`` before each call, so that a snapshot
    shows which step took it.
    """
    if a["step_callback"] is None:
        return
    steps = a["num_epochs"] * (len(a["images"]) // (a["k"] * a["batch_size"]))
    generator = a["generator"].eval()
    biases = [
        m.bias for m in generator.modules() if getattr(m, "bias", None) is not None
    ]
    with torch.no_grad():
        for step in range(1, steps + 1):
            biases[-1].fill_(math.sin(step))
            a["step_callback"](step, generator)


def losses(loss_fn: Callable, model: nn.Module, a: dict[str, Any]) -> list[Any]:
    """``loss_fn`` on 8 training images (with their labels if the call has labels), as
    ``fit`` calls it, after ``torch.manual_seed(seed)`` for a few seeds: the diffusion
    loss drops a share of the labels at random, and 8 draws alone might not show a
    change of that share."""
    x = a["images"][:8].float().div(255)
    labels = a.get("labels")
    args = (model, x) if labels is None else (model, x, labels[:8])
    model.train()
    results = []
    for seed in range(8):
        torch.manual_seed(seed)
        with torch.no_grad():
            out = loss_fn(*args)
        results.append(out if isinstance(out, dict) else {"loss": out})
    return results


def learning_rates(scheduler: Callable) -> list[float]:
    """The learning rates of 50 steps of the scheduler ``scheduler(optimizer, 50)``."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = scheduler(optimizer, 50)
    rates = []
    for _ in range(50):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def assert_same_call(
    chapter: FitCall, chapter_model: nn.Module, ours: FitCall, our_model: nn.Module
) -> None:
    assert ours.function == chapter.function
    assert ours.arguments.keys() == chapter.arguments.keys()
    theirs_by_id = {id(m): path for path, m in chapter_model.named_modules()}
    ours_by_id = {id(m): path for path, m in our_model.named_modules()}
    for key, a in chapter.arguments.items():
        b = ours.arguments[key]
        if isinstance(a, nn.Module):  # the model, or a part of it (the GAN's players)
            assert ours_by_id.get(id(b)) == theirs_by_id[id(a)], key
        elif isinstance(a, torch.Tensor):
            assert isinstance(b, torch.Tensor) and b.dtype == a.dtype, key
            assert torch.equal(b, a), key
        elif key == "loss_fn":
            expected = losses(a, chapter_model, chapter.arguments)
            for got, wanted in zip(losses(b, chapter_model, ours.arguments), expected):
                assert got.keys() == wanted.keys()
                for term, value in wanted.items():
                    torch.testing.assert_close(got[term], value, rtol=0, atol=1e-6)
        elif key == "scheduler":
            assert learning_rates(b) == learning_rates(a)
        elif key == "step_callback":
            assert callable(b)  # compared through the snapshots it takes
        else:
            assert (type(b), b) == (type(a), a), key


# --- the tests ------------------------------------------------------------------------


def as_json(settings: dict[str, Any]) -> Any:
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


@NAMES
@BUDGETS
def test_the_zoo_uses_the_chapters_checkpoint(name, budget, monkeypatch):
    recipe = chapter_recipe(name, budget, monkeypatch)
    ours = zoo.settings(name, budget)
    assert recipe.name == name
    assert checkpoint_path(name, ours) == checkpoint_path(name, recipe.settings)
    assert as_json(ours) == as_json(recipe.settings)


@NAMES
@BUDGETS
def test_the_zoo_builds_the_chapters_initial_weights(name, budget, monkeypatch):
    recipe = chapter_recipe(name, budget, monkeypatch)
    # a different global seed before each: a build that does not seed itself would
    # start from whatever the cells before it left, which chapter 06 cannot repeat
    torch.manual_seed(1)
    theirs = recipe.build().state_dict()
    torch.manual_seed(2)
    ours = zoo.build(name, budget).state_dict()
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert (ours[key].shape, ours[key].dtype) == (value.shape, value.dtype), key
        assert torch.equal(ours[key], value), key


@NAMES
@BUDGETS
def test_the_zoo_trains_with_the_chapters_call(name, budget, monkeypatch):
    recipe = chapter_recipe(name, budget, monkeypatch)
    recorded = record_training(monkeypatch)
    chapter_model = recipe.build()
    assert isinstance(recipe.train(chapter_model), gm.History)
    our_model = zoo.build(name, budget)
    assert isinstance(zoo.train(name, our_model, budget), gm.History)

    chapter, ours = recorded
    assert_same_call(chapter, chapter_model, ours, our_model)
    if name == "dcgan":  # the snapshots of fixed noise taken during training
        assert chapter_model.snapshots.any()
        assert torch.equal(our_model.snapshots, chapter_model.snapshots)


def test_the_zoo_names_the_chapters():
    assert zoo.NAMES == tuple(NOTEBOOKS)
    assert zoo.CHAPTERS == NOTEBOOKS
    for notebook in NOTEBOOKS.values():
        assert (ROOT / "notebooks" / f"{notebook}.ipynb").is_file()


def test_unknown_names_and_budgets_are_refused():
    with pytest.raises(ValueError, match="'gan'.*pixelcnn-gated, vae-mlp, dcgan"):
        zoo.settings("gan")
    with pytest.raises(ValueError, match="'fast'.*smoke, cpu, full"):
        zoo.settings("dcgan", "fast")


@NAMES
def test_load_takes_the_chapters_checkpoint_without_training(
    name, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("GMLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GMLIB_BUDGET", "smoke")
    settings = zoo.settings(name, "smoke")

    def pretend_to_train(model: nn.Module) -> gm.History:
        with torch.no_grad():  # recognizable weights, unlike any initialization
            for i, p in enumerate(model.parameters()):
                p.fill_(0.25 + i)
        return gm.History(step_loss=[1.0], epochs={"loss": [1.0]}, num_images=8)

    # as the chapter saves it
    saved, _ = gm.train_or_load(
        name, settings, build=lambda: zoo.build(name, "smoke"), train=pretend_to_train
    )
    path = checkpoint_path(name, settings)
    assert path.is_file() and path.is_relative_to(tmp_path)

    def no_training(*args, **kwargs):
        raise AssertionError("zoo.load trained instead of loading")

    monkeypatch.setattr(zoo, "train", no_training)
    loaded, history = zoo.load(name)
    assert f"loaded {name} from {path}" in capsys.readouterr().out
    assert history.step_loss == [1.0]
    assert type(loaded) is type(saved)
    expected = saved.state_dict()
    assert list(loaded.state_dict()) == list(expected)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key
