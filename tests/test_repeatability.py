"""Two executions of every notebook at the smoke budget print the same numbers.

Each pass runs the notebooks in order (chapter 06 loads the models the chapters before
it trained) in its own fresh cache, so every model is built and trained both times.
The text outputs of every code cell (stdout, stderr, ``text/plain``, ``text/html``)
are compared after masking what legitimately varies from run to run: wall-clock times,
rates and ratios of times (also the time columns of printed and HTML tables), the
cache folder's path, memory addresses, slider ids and embedded images.

The two passes run at the same time, one kernel each, with one CPU thread per kernel:
on two cores this costs about one sequential pass instead of two. Both passes read
the same copy of Fashion-MNIST, so the only state they do not share is the models.
Each kernel hashes strings with its own seed, so output that depends on the order of
a set differs between the passes. Not covered here: several threads per kernel (the
numbers differ from those of a run with two threads, as float sums do when split
differently, but each is repeatable), and a run that loads the models from a warm
cache instead of training them.
"""

from __future__ import annotations

import asyncio
import os
import re
from itertools import zip_longest
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

import gmlib as gm

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
# the environment as `make test` set it, before the autouse fixture isolates each test
OUTER_ENV = {
    name: os.environ[name]
    for name in ("GMLIB_CACHE", "GMLIB_DATA")
    if name in os.environ
}

_NUMBER = r"\d+(?:[.,]\d+)*(?:[eE][+-]?\d+)?"
MASKS = [
    # images embedded in HTML (e.g. gm.viz.static_slider) are pictures, not text
    (re.compile(r"data:image/[\w.+-]+;base64,[A-Za-z0-9+/=\s]*"), "data:image/<image>"),
    # rates: 1,234 images/s, 5.6 it/s
    (re.compile(_NUMBER + r"\s*[A-Za-z]+/s\b"), "<rate>"),
    # durations: 12 s, 3.4 ms, 5 µs, 2 min, 10 seconds
    (
        re.compile(
            _NUMBER + r"\s*(?:ms|µs|us|ns|s|sec|seconds?|min|minutes?)(?![\w/])"
        ),
        "<time>",
    ),
    # the repr of an object without one of its own
    (re.compile(r"\b0x[0-9a-fA-F]{6,}\b"), "0x<address>"),
    # the HTML id of a gm.viz.static_slider, unique per display
    (re.compile(r"\bgm-slider-[0-9a-f]+\b"), "gm-slider-<id>"),
    # a ratio of two times: 10x faster
    (re.compile(_NUMBER + r"\s*[x×](?=\s+(?:faster|slower)\b)"), "<ratio>x"),
    # the width of a masked number: aligned columns
    (re.compile(r"[ \t]{2,}"), " "),
]
# a table column of times: "seconds", "s per 64", "training, s"
TIME_HEADER = re.compile(r"(?:^|[\s,(])(?:s|ms|sec|seconds?|min|time)(?:$|[\s)])")
TEXT_TYPES = ("text/plain", "text/html")


def mask(text: str, paths: tuple[str, ...] = ()) -> str:
    """``text`` with the parts that vary between two identical runs replaced."""
    for path in sorted(paths, key=len, reverse=True):  # longest first: nested folders
        if path:
            text = text.replace(path, "<cache>")
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def mask_text_table(lines: list[str]) -> list[str]:
    """``lines`` with the time columns of a printed table masked. A table is a header
    of three or more fields set apart by two or more spaces, then rows of as many
    words, right-aligned under it; a column ends where its header ends."""
    out, spans, width = [], [], 0
    for line in lines:
        if spans and len(line.split()) == width:
            for start, end in reversed(spans):
                line = line[:start] + " <time>" + line[end:]
            out.append(line)
            continue
        fields = list(re.finditer(r"\S+(?: \S+)*", line))
        spans, width = [], len(fields)
        if width >= 3:
            spans = [
                (fields[i - 1].end() if i else 0, field.end())
                for i, field in enumerate(fields)
                if TIME_HEADER.search(field.group())
            ]
        out.append(line)
    return out


def mask_html_tables(html: str) -> str:
    """``html`` with the cells of every table column whose header names a time unit
    masked."""

    def table(match: re.Match) -> str:
        heads = re.findall(r"<th[^>]*>(.*?)</th>", match.group(0), re.S)
        columns = [i for i, head in enumerate(heads) if TIME_HEADER.search(head)]

        def row(tr: re.Match) -> str:
            text = tr.group(0)
            cells = list(re.finditer(r"<td[^>]*>(.*?)</td>", text, re.S))
            for i in reversed(columns):
                if i < len(cells) and cells[i].group(1):
                    start, end = cells[i].span(1)
                    text = text[:start] + "<time>" + text[end:]
            return text

        return re.sub(r"<tr>.*?</tr>", row, match.group(0), flags=re.S)

    return re.sub(r"<table.*?</table>", table, html, flags=re.S)


def cell_lines(cell, paths: tuple[str, ...] = ()) -> list[str]:
    """The masked text outputs of a code cell, one entry per line, each line prefixed
    with its kind. The streams are joined per name: where a stream's text is split
    into messages depends on timing, the text does not."""
    streams: dict[str, str] = {}
    rich: list[str] = []
    for out in cell.get("outputs", []):
        kind = out["output_type"]
        if kind == "stream":
            streams[out["name"]] = streams.get(out["name"], "") + out["text"]
        elif kind in ("execute_result", "display_data"):
            for mime in TEXT_TYPES:
                if mime in out.get("data", {}):
                    text = out["data"][mime]
                    text = "".join(text) if isinstance(text, list) else text
                    if mime == "text/html":
                        text = mask_html_tables(text)
                    lines = mask_text_table(text.splitlines())
                    rich += [f"{mime}: {line}" for line in lines]
        elif kind == "error":
            rich.append(f"error: {out['ename']}: {out['evalue']}")
    lines = [
        f"{name}: {line}"
        for name in sorted(streams)
        for line in mask_text_table(streams[name].splitlines())
    ]
    return [mask(line, paths) for line in lines + rich]


def differences(nb_a, nb_b, paths: tuple[str, ...] = ()) -> list[str]:
    """Every masked output line in which two executions of one notebook differ, as
    ``"cell <index>: <line in a> != <line in b>"``; empty when they agree."""
    found = []
    if len(nb_a.cells) != len(nb_b.cells):
        return [f"{len(nb_a.cells)} cells != {len(nb_b.cells)} cells"]
    for index, (a, b) in enumerate(zip(nb_a.cells, nb_b.cells)):
        if a.cell_type != "code":
            continue
        if a.source != b.source:
            found.append(f"cell {index}: the sources differ")
            continue
        pairs = zip_longest(cell_lines(a, paths), cell_lines(b, paths), fillvalue="")
        found += [f"cell {index}: {x!r} != {y!r}" for x, y in pairs if x != y]
    return found


async def _execute_in_order(paths: list[Path], env: dict[str, str]) -> list:
    from nbclient import NotebookClient

    executed = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb,
            kernel_name="python3",  # the notebooks' kernel, as under nbval
            timeout=600,
            resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
        )
        await client.async_execute(env=env)  # the kernel gets this environment
        executed.append(nb)
    return executed


async def _two_passes(paths: list[Path], envs: list[dict[str, str]]) -> list[list]:
    return list(await asyncio.gather(*(_execute_in_order(paths, e) for e in envs)))


def _fashion_mnist_folder(monkeypatch) -> Path:
    """The folder of the four IDX files the notebooks read, from the sources gmlib
    tries under `make test`'s environment; never downloaded here."""
    for name in ("GMLIB_CACHE", "GMLIB_DATA"):
        if name in OUTER_ENV:
            monkeypatch.setenv(name, OUTER_ENV[name])

    def offline(*args, **kwargs):
        raise OSError("no download in the tests")

    monkeypatch.setattr(gm.data, "_download", offline)
    try:
        source = gm.data.load("fashion-mnist", split="test", limit=1).source
    except Exception as exc:
        pytest.skip(f"Fashion-MNIST is not available without a download: {exc}")
    return Path(source.rsplit(": ", 1)[1])


def test_every_notebook_prints_the_same_numbers_twice(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "fashion-mnist").symlink_to(_fashion_mnist_folder(monkeypatch))
    caches = [tmp_path / "cache-a", tmp_path / "cache-b"]
    envs = []
    for hash_seed, cache in enumerate(caches, start=1):
        env = dict(os.environ)
        env.update(
            GMLIB_BUDGET="smoke",
            GMLIB_PROGRESS="0",
            GMLIB_CACHE=str(cache),
            GMLIB_DATA=str(data),
            OMP_NUM_THREADS="1",  # two kernels on two cores
            PYTHONHASHSEED=str(hash_seed),  # a set's order differs between the passes
        )
        envs.append(env)
    paths = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    assert len(paths) >= 7, paths
    first, second = asyncio.run(_two_passes(paths, envs))
    masked = tuple(str(c) for c in caches)
    report = []
    for path, a, b in zip(paths, first, second):
        for cache, nb in zip(caches, (a, b)):  # kept for a look after a failure
            nbformat.write(nb, cache / path.name)
        report += [f"{path.name} {line}" for line in differences(a, b, masked)]
    assert not report, "\n".join(report)


# The comparison itself, on handmade notebooks


def _executed(*outputs_per_cell) -> nbformat.NotebookNode:
    nb = new_notebook()
    for i, outputs in enumerate(outputs_per_cell):
        nb.cells.append(new_code_cell(f"cell_{i}()", outputs=list(outputs)))
    return nb


def _stdout(text: str):
    return new_output("stream", name="stdout", text=text)


def test_a_different_number_is_reported_with_its_cell_and_line():
    a = _executed([_stdout("setup\n")], [_stdout("epoch 1\nloss 0.4127\n")])
    b = _executed([_stdout("setup\n")], [_stdout("epoch 1\nloss 0.4128\n")])
    assert differences(a, b) == [
        "cell 1: 'stdout: loss 0.4127' != 'stdout: loss 0.4128'"
    ]
    assert differences(a, a) == []


def test_times_rates_paths_and_images_are_masked():
    a = _executed(
        [_stdout("loaded vae from /tmp/x/checkpoints/vae.pt\n")],
        [_stdout("3 epochs in 12.5 s, 1,234 images/s\nloss 0.41\n")],
        [
            new_output(
                "display_data",
                data={
                    "text/plain": "<Figure> took 3 ms",
                    "text/html": '<img src="data:image/png;base64,iVBORw0KGgo=">',
                },
            )
        ],
    )
    b = _executed(
        [_stdout("loaded vae from /tmp/y/checkpoints/vae.pt\n")],
        [_stdout("3 epochs in 9.1 s, 987 images/s\nloss 0.41\n")],
        [
            new_output(
                "display_data",
                data={
                    "text/plain": "<Figure> took 40 ms",
                    "text/html": '<img src="data:image/png;base64,R0lGODlh=">',
                },
            )
        ],
    )
    assert differences(a, b, ("/tmp/x", "/tmp/y")) == []
    # without the cache folders masked, the paths differ
    assert differences(a, b) == [
        "cell 0: 'stdout: loaded vae from /tmp/x/checkpoints/vae.pt' != "
        "'stdout: loaded vae from /tmp/y/checkpoints/vae.pt'"
    ]


def test_the_mask_keeps_numbers_that_are_not_times():
    assert mask("5 steps, 10 samples, 3 s") == "5 steps, 10 samples, <time>"
    assert mask("0.25 bits/dim in 2 min") == "0.25 bits/dim in <time>"
    assert mask("<Model at 0x7f3a2b1c4d90>") == "<Model at 0x<address>>"
    assert mask('<div id="gm-slider-9830b32499">') == '<div id="gm-slider-<id>">'


def test_stream_chunks_and_missing_lines_are_compared_as_text():
    a = _executed([_stdout("a 1\n"), _stdout("b 2\n")])
    b = _executed([_stdout("a 1\nb 2\n")])
    assert differences(a, b) == []
    c = _executed([_stdout("a 1\n")])
    assert differences(a, c) == ["cell 0: 'stdout: b 2' != ''"]


def test_time_columns_of_printed_and_html_tables_are_masked():
    table_a = (
        "50 samples per row, on cpu\n"
        " sampler  steps  seconds  s per 64  Frechet\n"
        "    ddim      5      0.7      0.46   284.78\n"
        "    ddpm     50      7.8      5.01   321.88\n"
        "done in 3 s\n"
    )
    table_b = table_a.replace("0.7      0.46", "1.4      0.97")
    table_b = table_b.replace("7.8      5.01", "12.3    10.12")
    html = (
        "<table><thead><tr><th>model</th><th>training, s</th><th>Frechet</th></tr>"
        "</thead><tbody><tr><td>GAN</td><td>{}</td><td>{}</td></tr></tbody></table>"
    )
    a = _executed(
        [_stdout(table_a)],
        [new_output("display_data", data={"text/html": html.format(23, 475.3)})],
        [_stdout("PixelRNN    9.5 ms, PixelCNN   3.1 ms; 10x faster\n")],
    )
    b = _executed(
        [_stdout(table_b)],
        [new_output("display_data", data={"text/html": html.format(104, 475.3)})],
        [_stdout("PixelRNN   12.5 ms, PixelCNN  10.1 ms; 9x faster\n")],
    )
    assert differences(a, b) == []
    # a number outside the time columns still counts
    c = _executed(
        [_stdout(table_b.replace("321.88", "321.89"))],
        [new_output("display_data", data={"text/html": html.format(23, 475.4)})],
        [_stdout("PixelRNN    9.5 ms, PixelCNN   3.1 ms; 10x faster\n")],
    )
    assert differences(a, c) == [
        "cell 0: 'stdout: ddpm 50 <time> <time> 321.88' != "
        "'stdout: ddpm 50 <time> <time> 321.89'",
        "cell 1: 'text/html: " + html.format("<time>", 475.3) + "' != "
        "'text/html: " + html.format("<time>", 475.4) + "'",
    ]
