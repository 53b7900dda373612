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
# The book's GitHub address for its Binder and Colab buttons (default: the origin remote when it is
# on GitHub; none, no buttons), the branch they open, and the configuration made from _config.yml.
REPOSITORY ?=
BRANCH ?=
BOOK_CONFIG := _build/_config.yml
BOOK_PDF ?=
LABDIR ?= book
LABFLAGS ?=

.PHONY: setup vendor book test test-unit test-notebooks clean reproduce reproduce-attention reproduce-rest bench bench-quick lab pdf

setup: $(STAMP)

# torch is pinned to the CPU build first; the project's own range then installs nothing more.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# MathJax and the widget manager, served from the book itself (no CDN), and only what the pages
# load: MathJax's TeX-to-HTML component, its fonts and the TeX extensions it loads on demand (2 MB
# of the package's 24), the widget manager's embed.js with its icon fonts. The theme's FontAwesome
# script (1.5 MB on every page) is replaced by a stub: its icons come from the theme's CSS webfonts,
# the script only adds custom SVG icons, which the book has none of. The stamp's name changes
# with this list, so an older _vendor is made again.
MATHJAX_FILES := tex-chtml.js output/chtml/fonts/woff-v2 input/tex/extensions
VENDOR_TMP := $(dir $(VENDOR))tmp
vendor: $(VENDOR)/.stamp-2

$(VENDOR)/.stamp-2:
	@rm -rf $(VENDOR_TMP) && mkdir -p $(VENDOR_TMP) $(VENDOR)
	cd $(VENDOR_TMP) && npm pack --silent mathjax@$(MATHJAX_VERSION) @jupyter-widgets/html-manager@$(WIDGETS_VERSION) >/dev/null
	cd $(VENDOR_TMP) && mkdir mathjax widgets && tar xzf mathjax-$(MATHJAX_VERSION).tgz -C mathjax \
	  && tar xzf jupyter-widgets-html-manager-$(WIDGETS_VERSION).tgz -C widgets
	rm -rf $(VENDOR)/mathjax $(VENDOR)/widgets $(VENDOR)/scripts $(VENDOR)/.stamp
	for path in $(MATHJAX_FILES); do mkdir -p $(VENDOR)/mathjax/$$(dirname $$path) \
	  && cp -r $(VENDOR_TMP)/mathjax/package/es5/$$path $(VENDOR)/mathjax/$$path || exit 1; done
	cp $(VENDOR_TMP)/mathjax/package/LICENSE $(VENDOR)/mathjax/
	mkdir -p $(VENDOR)/widgets && cp $(VENDOR_TMP)/widgets/package/dist/embed.js $(VENDOR_TMP)/widgets/package/dist/embed.js.LICENSE.txt \
	  $(VENDOR_TMP)/widgets/package/dist/*.woff* $(VENDOR)/widgets/
	mkdir -p $(VENDOR)/scripts && printf '%s\n' "/* hw2book: in place of the theme's FontAwesome SVG script;" \
	  " the icons come from the theme's CSS webfonts (Makefile, vendor). */" > $(VENDOR)/scripts/fontawesome.js
	rm -rf $(VENDOR_TMP)
	@touch $@

book: setup vendor
	@$(PY) tools/book_config.py --output $(BOOK_CONFIG) --repository "$(REPOSITORY)" --branch "$(BRANCH)" --pdf "$(BOOK_PDF)"
	$(VENV)/bin/jupyter-book build book --config $(BOOK_CONFIG) --path-output . $(BOOKFLAGS)

# The whole book as one PDF, _build/html/hw2book.pdf, linked from every page's download menu:
# the HTML book printed by headless Chromium (Debian's `chromium`), offline.
pdf: setup vendor
	$(MAKE) --no-print-directory book BOOK_PDF=hw2book.pdf
	$(PY) tools/book_pdf.py --html _build/html --output _build/html/hw2book.pdf

# JupyterLab on this machine only (127.0.0.1, with a token), opening the book's folder; the kernel is
# this .venv's Python, so hw2lib imports and the notebooks load the stored runs of results/full.
# tools/lab-settings: widget messages reach the kernel's main thread one at a time (JupyterLab's
# default sends them to a second kernel thread, where a widget callback can run while another draws;
# pyplot and ipywidgets are not thread-safe).
# Root (a container) needs --allow-root; the server still listens on loopback only.
lab: setup
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=$(LABDIR) \
	  --LabApp.app_settings_dir=$(CURDIR)/tools/lab-settings $(if $(filter 0,$(shell id -u)),--allow-root) $(LABFLAGS)

test: setup
	HW2LIB_PROFILE=quick $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile \
	  --nbval --nbval-current-env tests book/*.ipynb

test-unit: setup
	HW2LIB_PROFILE=quick $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile tests

test-notebooks: setup
	HW2LIB_PROFILE=quick $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --nbval --nbval-current-env book/*.ipynb

# Every experiment of the book in the full profile, stored under results/full: two streams of one
# CPU thread each, so a 2-core laptop is kept busy (about 22 minutes when nothing else runs; a run
# already stored is loaded, not retrained, so delete a run's folder to train it again). The streams
# hold about equal work: the three attention translators (the slowest runs) and one CNN seed run,
# against the three translators without attention, the chapter 2 sweep and the other CNN seed run.
reproduce: setup
	$(MAKE) --no-print-directory -j2 reproduce-attention reproduce-rest

reproduce-attention: setup
	$(PY) -m hw2lib seq2seq --attention yes --profile full --threads 1 --no-progress
	$(PY) -m hw2lib seeds seq2seq-attention --seeds 43 44 --threads 1 --no-progress
	$(PY) -m hw2lib seeds cnn --seeds 43 --threads 1 --no-progress

reproduce-rest: setup
	$(PY) -m hw2lib seq2seq --attention no --profile full --threads 1 --no-progress
	$(PY) -m hw2lib seeds seq2seq-no-attention --seeds 43 44 --threads 1 --no-progress
	$(PY) -m hw2lib sweep --profile full --threads 1 --no-progress
	$(PY) -m hw2lib seeds cnn --seeds 44 --threads 1 --no-progress

# Speed, as ratios against reference loops run in the same process (a few minutes on an otherwise
# idle machine); writes bench/RESULTS.md. bench-quick: a smoke run of seconds.
bench: setup
	$(PY) -m bench --markdown bench/RESULTS.md
	$(PY) -m bench.readme

bench-quick: setup
	$(PY) -m bench --quick

clean:
	rm -rf _build _vendor results/quick
