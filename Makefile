# make book   build the static site into _build/html (every notebook executed)
# make test   unit tests, every notebook under nbval (smoke budget), and the site test
# make bench  benchmarks that print figures (not tests)
# Each target sets up .venv first; a second run skips what is already installed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE   := tests/.node
MATHJAX := $(NODE)/node_modules/mathjax/es5/tex-mml-chtml.js
MATHJAX_VERSION := 3.2.2
TEST_CACHE ?= $(CURDIR)/_build/test-cache

.PHONY: setup book test bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps -e .
	@touch $(STAMP)

book: setup
	GMLIB_PROGRESS=0 $(BIN)/jupyter-book build . -W -n --keep-going
	@echo
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html"

# The site test serves MathJax (the same release the book loads from its CDN) from this local copy,
# because the test machine is offline.
$(MATHJAX):
	npm install --silent --no-audit --no-fund --prefix $(NODE) mathjax@$(MATHJAX_VERSION)

test: setup $(MATHJAX)
	rm -rf $(TEST_CACHE)/checkpoints
	GMLIB_BUDGET=smoke GMLIB_PROGRESS=0 GMLIB_CACHE=$(TEST_CACHE) GMLIB_MATHJAX=$(CURDIR)/$(NODE)/node_modules/mathjax \
		$(BIN)/python -m pytest --nbval-lax -p no:cacheprovider tests notebooks

bench: setup
	$(BIN)/python bench/throughput.py

clean:
	rm -rf _build
