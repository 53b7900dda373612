# hw2book: `make book` builds the HTML book into _build/html, `make test` runs every test.
# Both set everything up first (a .venv, the package, the offline JavaScript) and skip
# what is already done.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hw2book-installed
VENDOR := _vendor/static
MATHJAX_VERSION := 3.2.2
WIDGETS_VERSION := 1.0.15
BOOKFLAGS ?=
PYTEST_WORKERS ?= 2

.PHONY: setup vendor book test test-unit test-notebooks clean reproduce reproduce-attention reproduce-rest bench bench-quick

setup: $(STAMP)

# torch is pinned to the CPU build first; the project's own range then installs nothing more.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# MathJax and the widget manager, served from the book itself (no CDN).
vendor: $(VENDOR)/.stamp

$(VENDOR)/.stamp:
	@rm -rf _vendor/tmp && mkdir -p _vendor/tmp $(VENDOR)
	cd _vendor/tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) @jupyter-widgets/html-manager@$(WIDGETS_VERSION) >/dev/null
	cd _vendor/tmp && mkdir mathjax widgets && tar xzf mathjax-$(MATHJAX_VERSION).tgz -C mathjax \
	  && tar xzf jupyter-widgets-html-manager-$(WIDGETS_VERSION).tgz -C widgets
	rm -rf $(VENDOR)/mathjax $(VENDOR)/widgets
	cp -r _vendor/tmp/mathjax/package/es5 $(VENDOR)/mathjax
	mkdir -p $(VENDOR)/widgets && cp _vendor/tmp/widgets/package/dist/* $(VENDOR)/widgets/ && rm -f $(VENDOR)/widgets/*.map
	rm -rf _vendor/tmp
	@touch $@

book: setup vendor
	$(VENV)/bin/jupyter-book build book --config _config.yml --path-output . $(BOOKFLAGS)

test: setup
	HW2LIB_PROFILE=quick $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile \
	  --nbval --nbval-current-env tests book/*.ipynb

test-unit: setup
	HW2LIB_PROFILE=quick $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile tests

test-notebooks: setup
	HW2LIB_PROFILE=quick $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --nbval --nbval-current-env book/*.ipynb

# Every experiment of the book in the full profile, stored under results/full: two streams of one
# CPU thread each, so a 2-core laptop is kept busy (about 25 minutes when nothing else runs; a run
# already stored is loaded, not retrained, so delete a run's folder to train it again).
reproduce: setup
	$(MAKE) --no-print-directory -j2 reproduce-attention reproduce-rest

reproduce-attention: setup
	$(PY) -m hw2lib seq2seq --attention yes --profile full --threads 1 --no-progress
	$(PY) -m hw2lib seeds seq2seq-attention cnn --seeds 43 44 --threads 1 --no-progress

reproduce-rest: setup
	$(PY) -m hw2lib seq2seq --attention no --profile full --threads 1 --no-progress
	$(PY) -m hw2lib seeds seq2seq-no-attention --seeds 43 44 --threads 1 --no-progress
	$(PY) -m hw2lib sweep --profile full --threads 1 --no-progress

# Speed, as ratios against reference loops run in the same process (a few minutes on an otherwise
# idle machine); writes bench/RESULTS.md. bench-quick: a smoke run of seconds.
bench: setup
	$(PY) -m bench --markdown bench/RESULTS.md
	$(PY) -m bench.readme

bench-quick: setup
	$(PY) -m bench --quick

clean:
	rm -rf _build _vendor results/quick
