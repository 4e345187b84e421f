"""The built book, opened page by page in headless Chromium (driven by Playwright).

The book is built once per session at the smoke budget (``jupyter-book build -W -n``),
served over http on 127.0.0.1, and every page in ``_toc.yml`` is opened. A page passes
when it logs no error, MathJax typeset all its math (no raw ``$$``, ``\\(`` or ``\\[``
left in the text), every image loaded, every line of code fits the content column (at
the 1280 px test viewport), a notebook page's Colab button opens that very
notebook from the repository in ``_config.yml``, and every static slider swaps its image
when moved.

The machine running this is offline, so the browser's network is faked: requests for
MathJax on its CDN (``mathjax_path`` in ``_config.yml``) are answered from a local copy
of the same release's npm package, and every other request that leaves the local server
is aborted and reported: a published page must not depend on anything else.

Environment (``make test`` provides both, see scripts/provision.py):
    GMLIB_MATHJAX    the unpacked npm package of MathJax
                     (default: _build/mathjax/<version>/mathjax)
    GMLIB_CHROMIUM   the browser executable (default ``/usr/bin/chromium``)
    GMLIB_SITE_DIR   an already built ``_build/html`` to test instead of building the
                     book
"""

from __future__ import annotations

import functools
import http.server
import json
import mimetypes
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from playwright import sync_api

pytestmark = pytest.mark.site

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
TOC = yaml.safe_load((REPO / "_toc.yml").read_text())
CHROMIUM = os.environ.get("GMLIB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
BUILD_TIMEOUT = 1800  # seconds; six notebooks at the smoke budget take a few minutes
PAGE_TIMEOUT_MS = 20_000
# index.html redirects to the root page
NOT_PAGES = {"genindex.html", "search.html", "index.html"}


def toc_docnames(toc: dict) -> list[str]:
    """Every document of a jb-book table of contents, in reading order."""
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections"))
            for part in entry.get("parts", []):
                walk(part.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [re.sub(r"\.(md|ipynb)$", "", name) for name in names]


DOCNAMES = toc_docnames(TOC)


def mathjax_cdn() -> tuple[str, str]:
    """``(prefix, version)`` of the MathJax CDN URL the book loads, e.g.
    ``.../mathjax@3.2.2/``."""
    url = CONFIG["sphinx"]["config"]["mathjax_path"]
    match = re.match(r"^(https://cdn\.jsdelivr\.net/npm/mathjax@([^/]+)/)", url)
    assert match, (
        f"mathjax_path in _config.yml is {url!r}; "
        "the site test expects jsDelivr's npm URL"
    )
    return match.group(1), match.group(2)


def colab_url(docname: str) -> str:
    """The Colab link sphinx-book-theme should put on the page of notebook
    ``docname``."""
    repo = CONFIG["repository"]
    owner_repo = re.sub(r"^https://github\.com/|\.git$|/$", "", repo["url"])
    path = f"{repo.get('path_to_book') or ''}".strip("/")
    path = f"{path}/{docname}.ipynb" if path else f"{docname}.ipynb"
    base = (
        CONFIG["launch_buttons"]
        .get("colab_url", "https://colab.research.google.com")
        .rstrip("/")
    )
    return f"{base}/github/{owner_repo}/blob/{repo.get('branch', 'main')}/{path}"


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


# --- the site: built once, served over http -------------------------------------------


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory) -> Path:
    """``_build/html`` of the book built at the smoke budget (or
    ``$GMLIB_SITE_DIR``)."""
    given = os.environ.get("GMLIB_SITE_DIR")
    if given:
        html = Path(given)
        assert (html / "index.html").is_file(), (
            f"GMLIB_SITE_DIR={given} holds no built book"
        )
        return html
    out = tmp_path_factory.mktemp("book")
    bindir = Path(sys.executable).parent
    env = {
        **os.environ,
        "GMLIB_BUDGET": "smoke",
        "GMLIB_PROGRESS": "0",
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [
        str(bindir / "jupyter-book"),
        "build",
        str(REPO),
        "-W",
        "-n",
        "--keep-going",
        "--path-output",
        str(out),
    ]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        out_text = (
            exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        )
        pytest.fail(
            f"the book build took over {BUILD_TIMEOUT} s:\n"
            + "\n".join(strip_ansi(out_text).splitlines()[-60:]),
            pytrace=False,
        )
    log = strip_ansi(proc.stdout + proc.stderr)
    (out / "build.log").write_text(log)
    if proc.returncode != 0:
        lines = log.splitlines()
        problems = [
            line
            for line in lines
            if re.search(r"WARNING:|ERROR:|CRITICAL:|Error\b|Exception\b", line)
            and "IPKernelApp" not in line
        ][:40]
        pytest.fail(
            f"the book build failed (exit {proc.returncode}): {' '.join(command)}\n"
            "warnings and errors:\n"
            + "\n".join(problems)
            + "\n--- last lines of the log ---\n"
            + "\n".join(lines[-60:]),
            pytrace=False,
        )
    print(f"\nbook built in {time.perf_counter() - start:.0f} s into {out}")
    return out / "_build" / "html"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request in the test output
        pass


@pytest.fixture(scope="session")
def server(site_dir):
    """Base URL of a threaded http server on a free port of 127.0.0.1 serving the
    site."""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


# --- the browser, with a faked network ------------------------------------------------


@dataclass
class Network:
    """What the browser asked for beyond the local server."""

    # CDN requests answered from the local copy
    served: list[str] = field(default_factory=list)
    # CDN requests the local copy cannot answer
    missing: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # everything else: aborted


def local_mathjax() -> tuple[Path, str]:
    """The local MathJax package and the CDN prefix it stands in for; fails with the
    remedy."""
    prefix, version = mathjax_cdn()
    root = Path(
        os.environ.get("GMLIB_MATHJAX")
        or REPO / "_build" / "mathjax" / version / "mathjax"
    )
    remedy = (
        "run the tests with make test, which fetches it "
        "(python scripts/provision.py mathjax prints where)"
    )
    package = root / "package.json"
    if not package.is_file():
        pytest.fail(f"no local MathJax at {root}; {remedy}", pytrace=False)
    found = json.loads(package.read_text()).get("version")
    if found != version:
        pytest.fail(
            f"the local MathJax at {root} is {found}, the book loads {version}; "
            f"{remedy}",
            pytrace=False,
        )
    return root.resolve(), prefix


CONTENT_TYPES = {
    ".js": "application/javascript",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".json": "application/json",
    ".css": "text/css",
}


@pytest.fixture(scope="session")
def browser_context(server):
    """One Chromium and one context for all pages; yields ``(context, network)``."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"no browser at {CHROMIUM}: run the tests with make test, which finds or "
            "installs one, or set GMLIB_CHROMIUM to a Chrome/Chromium executable",
            pytrace=False,
        )
    mathjax_root, cdn_prefix = local_mathjax()
    network = Network()

    def fake_network(route) -> None:
        url = route.request.url
        if url.startswith(server):
            route.continue_()
        elif url.startswith(cdn_prefix):
            relative = url[len(cdn_prefix) :].split("?")[0].split("#")[0]
            path = (mathjax_root / relative).resolve()
            if path.is_file() and path.is_relative_to(mathjax_root):
                network.served.append(url)
                kind = (
                    CONTENT_TYPES.get(path.suffix)
                    or mimetypes.guess_type(path.name)[0]
                    or "application/octet-stream"
                )
                # The CDN allows any origin, which fonts loaded across origins need.
                route.fulfill(
                    status=200,
                    path=path,
                    headers={"Content-Type": kind, "Access-Control-Allow-Origin": "*"},
                )
            else:
                network.missing.append(url)
                route.fulfill(
                    status=404, body=f"{relative} is not in the local MathJax copy"
                )
        else:
            network.blocked.append(url)
            route.abort("blockedbyclient")

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, service_workers="block"
        )
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        context.route("**/*", fake_network)
        try:
            yield context, network
        finally:
            context.close()
            browser.close()


# --- what is checked on every page ----------------------------------------------------

MATH_REPORT_JS = r"""() => {
  const math = [...document.querySelectorAll('.math')];
  const untypeset = math.filter(e => !e.querySelector('mjx-container'))
                        .map(e => e.textContent.trim().slice(0, 80));
  // TeX errors: MathJax renders a syntax error as <merror> and an undefined macro as
  // red text.
  const texErrors = [];
  const items = window.MathJax && MathJax.startup && MathJax.startup.document
                ? MathJax.startup.document.getMathItemsWithin(document.body) : [];
  for (const item of items) {
    let bad = null;
    if (item.root) item.root.walkTree(node => {
      if (node.isKind('merror')) bad = bad || 'error';
      else if (node.isKind('mtext') && node.attributes.get('mathcolor') === 'red')
        bad = bad || 'undefined macro';
    });
    if (bad) texErrors.push(`${bad} in ${String(item.math).slice(0, 80)}`);
  }
  // The visible prose: the page's text without code, scripts and typeset math.
  const copy = document.body.cloneNode(true);
  copy.querySelectorAll('pre, code, script, style, textarea, mjx-container, .highlight')
      .forEach(e => e.remove());
  const text = copy.textContent;
  const raw = [];
  const patterns = [/\$\$/, /\\\(/, /\\\[/, /\\begin\{/,
                    /\$[^\s$][^$\n]{0,200}?[^\s$\\]\$|\$[^\s$]\$/];
  for (const pattern of patterns) {
    const m = text.match(pattern);
    if (m) raw.push(text.slice(Math.max(0, m.index - 30), m.index + 50)
                        .replace(/\s+/g, ' '));
  }
  return {math: math.length,
          containers: document.querySelectorAll('mjx-container').length,
          untypeset, texErrors, raw};
}"""

IMAGES_JS = r"""async () => {
  const images = [...document.images];
  images.forEach(img => { img.loading = 'eager'; });
  const settle = img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done, {once: true});
    img.addEventListener('error', done, {once: true});
  });
  await Promise.race([Promise.all(images.map(settle)),
                      new Promise(done => setTimeout(done, 10000))]);
  return {count: images.length,
          broken: images.filter(img => !(img.complete && img.naturalWidth > 0))
                        .map(img => (img.currentSrc || img.src || '(no src)')
                                      .slice(0, 100))};
}"""

# Code that does not fit the content column: input lines wider than their box (measured
# without the wrapping course.css adds, so a cut line is caught even if it would wrap),
# and outputs (text or HTML tables) that overflow their box.
CODE_FIT_JS = r"""() => {
  const cut = [];
  for (const pre of document.querySelectorAll('div.cell_input div.highlight pre')) {
    pre.style.whiteSpace = 'pre';
    if (pre.scrollWidth > pre.clientWidth + 1) {
      const lines = pre.textContent.split('\n');
      cut.push(lines.reduce((a, b) => (b.length > a.length ? b : a)).slice(0, 90));
    }
    pre.style.whiteSpace = '';
  }
  const overflow = [...document.querySelectorAll('div.cell_output pre')]
    .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
    .map(pre => pre.textContent.slice(0, 90));
  // an HTML table (gm.settings, a results table) whose right edge passes its output's
  for (const table of document.querySelectorAll('div.cell_output table')) {
    const box = table.closest('div.cell_output').getBoundingClientRect();
    if (table.getBoundingClientRect().right > box.right + 1) {
      overflow.push(table.innerText.replace(/\s+/g, ' ').trim().slice(0, 90));
    }
  }
  return {cut, overflow};
}"""

SLIDER_STATE_JS = r"""(div) => {
  const input = div.querySelector('input[type=range]');
  const img = div.querySelector('img');
  const frames = div.querySelector('.gm-frames');
  const output = div.querySelector('output');
  return {min: input ? Number(input.min) : null, max: input ? Number(input.max) : null,
          value: input ? Number(input.value) : null, src: img ? img.src : null,
          output: output ? output.textContent : null,
          frames: frames ? JSON.parse(frames.textContent) : null};
}"""


@dataclass
class PageReport:
    docname: str
    problems: list[str] = field(default_factory=list)
    math: int = 0
    images: int = 0
    sliders_moved: int = 0


def check_sliders(page, report: PageReport) -> None:
    """Move every static slider on the page; its image must become the frame for the
    new value."""
    sliders = page.locator("div.gm-slider")
    for i in range(sliders.count()):
        slider = sliders.nth(i)
        before = slider.evaluate(SLIDER_STATE_JS)
        where = f"slider {i + 1}"
        if before["min"] is None or before["src"] is None or before["frames"] is None:
            report.problems.append(
                f"{where}: needs an input[type=range], an img and its frames"
            )
            continue
        if before["max"] <= before["min"]:
            continue  # a single frame: nothing to move
        target = before["max"] if before["value"] != before["max"] else before["min"]
        slider.locator("input[type=range]").fill(str(target))
        try:
            page.wait_for_function(
                "([div, src]) => div.querySelector('img').src !== src",
                arg=[slider.element_handle(), before["src"]],
                timeout=5000,
            )
        except Exception:
            report.problems.append(
                f"{where}: moving it from {before['value']} to {target} "
                "did not change the image"
            )
            continue
        try:  # the new frame must display, not just be assigned
            page.wait_for_function(
                "div => { const img = div.querySelector('img');"
                " return img.complete && img.naturalWidth > 0; }",
                arg=slider.element_handle(),
                timeout=5000,
            )
        except Exception:
            report.problems.append(
                f"{where}: the frame at value {target} does not load as an image"
            )
            continue
        after = slider.evaluate(SLIDER_STATE_JS)
        if after["src"] != before["frames"]["src"][target]:
            report.problems.append(
                f"{where}: at value {target} it shows another frame than frame {target}"
            )
        elif after["output"] != before["frames"]["labels"][target]:
            report.problems.append(
                f"{where}: at value {target} its label reads {after['output']!r}, "
                f"expected {before['frames']['labels'][target]!r}"
            )
        else:
            report.sliders_moved += 1


def check_page(context, network: Network, base: str, docname: str) -> PageReport:
    report = PageReport(docname)
    problems = report.problems
    errors: list[str] = []
    blocked_before, missing_before = len(network.blocked), len(network.missing)
    page = context.new_page()
    page.on(
        "console",
        lambda msg: (
            errors.append(f"console.{msg.type}: {msg.text}")
            if msg.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on(
        "response",
        lambda r: (
            errors.append(f"HTTP {r.status} for {r.url}") if r.status >= 400 else None
        ),
    )
    try:
        response = page.goto(base + docname + ".html", wait_until="load")
        if response is None or response.status != 200:
            problems.append(
                f"the page answered {response.status if response else 'nothing'}"
            )
            return report

        # Math: wait for MathJax's first typesetting pass, then look for leftovers.
        if page.locator("script[src*='mathjax']").count():
            try:
                page.wait_for_function(
                    "() => window.MathJax && MathJax.startup"
                    " && MathJax.startup.promise",
                    timeout=PAGE_TIMEOUT_MS,
                )
                page.evaluate("() => MathJax.startup.promise.then(() => true)")
            except Exception as exc:
                problems.append(f"MathJax did not start: {str(exc).splitlines()[0]}")
        math = page.evaluate(MATH_REPORT_JS)
        report.math = math["math"]
        if math["math"] and not math["containers"]:
            problems.append(
                f"{math['math']} math elements but no mjx-container: "
                "MathJax typeset nothing"
            )
        if math["untypeset"]:
            problems.append(f"math left untypeset: {math['untypeset'][:5]}")
        if math["texErrors"]:
            problems.append(f"TeX errors: {math['texErrors'][:5]}")
        if math["raw"]:
            problems.append(f"raw math delimiters in the text: {math['raw']}")

        # Images, including the data: URIs of notebook outputs.
        images = page.evaluate(IMAGES_JS)
        report.images = images["count"]
        if images["broken"]:
            problems.append(f"images that did not load: {images['broken']}")

        # The Colab button of a notebook page opens that notebook from the configured
        # repository.
        links = page.eval_on_selector_all(
            "a[href^='https://colab.research.google.com/github/']",
            "els => els.map(a => a.href)",
        )
        expected = colab_url(docname)
        is_notebook = (REPO / f"{docname}.ipynb").is_file()
        if is_notebook and not links:
            problems.append(f"no Colab launch link (expected {expected})")
        wrong = [link for link in links if link != expected]
        if wrong:
            problems.append(f"Colab links {wrong} should be {expected}")

        fit = page.evaluate(CODE_FIT_JS)
        if fit["cut"]:
            problems.append(
                f"code lines cut off by the content column: {fit['cut'][:3]}"
            )
        if fit["overflow"]:
            problems.append(
                f"outputs wider than the content column: {fit['overflow'][:3]}"
            )

        check_sliders(page, report)
        page.wait_for_timeout(100)  # let late console messages arrive
    finally:
        page.close()
    problems.extend(errors)
    problems.extend(
        f"request blocked (the site must not leave its server): {url}"
        for url in network.blocked[blocked_before:]
    )
    problems.extend(
        f"MathJax file missing from the local copy: {url}"
        for url in network.missing[missing_before:]
    )
    report.problems = list(
        dict.fromkeys(problems)
    )  # a resource requested twice is one problem
    return report


@pytest.fixture(scope="session")
def site_reports(browser_context, server) -> dict[str, PageReport]:
    """Every page of the table of contents, opened once and checked."""
    context, network = browser_context
    return {
        docname: check_page(context, network, server, docname) for docname in DOCNAMES
    }


# --- the tests ------------------------------------------------------------------------


def test_every_built_page_is_in_the_toc(site_dir):
    built = {
        str(p.relative_to(site_dir).with_suffix(""))
        for p in site_dir.rglob("*.html")
        if p.relative_to(site_dir).parts[0] not in ("_static", "_sources", "_images")
        and str(p.relative_to(site_dir)) not in NOT_PAGES
    }
    missing = [d for d in DOCNAMES if d not in built]
    assert not missing, f"pages in _toc.yml that were not built: {missing}"
    extra = sorted(built - set(DOCNAMES))
    assert not extra, (
        f"built pages that the test does not open (not in _toc.yml): {extra}"
    )
    index = (site_dir / "index.html").read_text()
    assert f"{DOCNAMES[0]}.html" in index, (
        "index.html does not lead to the root page of _toc.yml"
    )


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page(site_reports, docname):
    report = site_reports[docname]
    assert not report.problems, f"{docname}.html:\n  " + "\n  ".join(report.problems)


def test_math_is_served_from_the_local_mathjax(site_reports, browser_context):
    _, network = browser_context
    assert any(r.math for r in site_reports.values()), (
        "no page has math: the math checks proved nothing"
    )
    assert network.served, (
        "MathJax was never requested from its CDN, so the routing was never tested"
    )
    assert not network.blocked, (
        f"requests beyond the site and the MathJax CDN: {sorted(set(network.blocked))}"
    )


def test_a_static_slider_moves(site_reports):
    moved = {d: r.sliders_moved for d, r in site_reports.items() if r.sliders_moved}
    assert moved, (
        "no page has a static slider (gmlib.viz.static_slider) that could be moved"
    )
