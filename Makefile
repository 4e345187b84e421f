# make book   build the static site into _build/html (every notebook executed)
# make test   lint, unit tests, every notebook under nbval (smoke budget), and the site test
# make bench  benchmarks that print figures (not tests)
# make repository URL=https://github.com/<owner>/<repo>   point the course at a fork
# Each target sets up .venv first, then provides what it needs beyond Python packages
# (scripts/provision.py: the data, a browser, MathJax); a second run skips all of it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_CACHE ?= $(CURDIR)/_build/test-cache
PROVISION := $(BIN)/python scripts/provision.py
LINTED := gmlib tests bench scripts notebooks

.PHONY: setup book test lint bench repository clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps -e .
	@touch $(STAMP)

book: setup
	GMLIB_PROGRESS=0 $(PROVISION) data -- \
		$(BIN)/jupyter-book build . -W -n --keep-going
	@echo
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html"

lint: setup
	$(BIN)/ruff check --quiet $(LINTED)
	$(BIN)/ruff format --check --quiet $(LINTED)

# The site test opens the built book in Chromium and serves MathJax (the release the book
# loads from its CDN) from a local copy, because the test machine may be offline.
test: lint
	rm -rf $(TEST_CACHE)/checkpoints
	GMLIB_BUDGET=smoke GMLIB_PROGRESS=0 GMLIB_CACHE=$(TEST_CACHE) \
		$(PROVISION) data browser mathjax -- \
		$(BIN)/python -m pytest --nbval-lax -p no:cacheprovider tests notebooks

bench: setup
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/sampling.py

repository:
	@test -n "$(URL)" || { echo "usage: make repository URL=https://github.com/<owner>/<repo>"; exit 2; }
	$(PYTHON) scripts/repository.py "$(URL)"

clean:
	rm -rf _build
