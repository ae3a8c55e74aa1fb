# Quickstart targets. Each is idempotent: set-up steps leave a stamp and are skipped once done.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-slow fuzz bench setup spu-env clean

setup: $(VENV)/.stamp-project

$(VENV)/.stamp-venv:
	$(PYTHON) -m venv $(VENV)
	touch $@

# torch first, pinned, so the project's ranges are met by what is installed and pip never reaches for a newer build.
$(VENV)/.stamp-torch: $(VENV)/.stamp-venv
	$(PIP) install --quiet $(TORCH_PINS)
	touch $@

# With the distributed extra (Ray), so the Ray executor's tests run rather than skip.
$(VENV)/.stamp-project: $(VENV)/.stamp-torch pyproject.toml setup.cfg
	$(PIP) install --quiet -e '.[test,distributed]'
	touch $@

# secretflow SPU, the real Cheetah that `pisim calibrate/validate --protocol cheetah` execute, in an environment of
# its own: spu 0.9.5 ships only a cp311 wheel and pins numpy 1.26.4 and jax/jaxlib 0.4.34, which the main
# environment must not be made to share (README, "A real Cheetah"). PISim starts its python as a subprocess.
SPU_PYTHON ?= python3.11
SPU_VENV := .venv-spu
SPU_PINS := spu==0.9.5
spu-env: $(SPU_VENV)/.stamp-spu

$(SPU_VENV)/.stamp-spu:
	$(SPU_PYTHON) -m venv $(SPU_VENV)
	$(SPU_VENV)/bin/python -m pip install --quiet $(SPU_PINS)
	touch $@

DEMO := out/demo
# The main job on bundled defaults: price the CIFAR ResNet18 under Delphi, search the bundled digits data for
# the most accurate network within a 10 s online budget, and report table and figures. A second run resumes
# the finished search from its cache instead of training again.
demo: setup
	$(VENV)/bin/pisim estimate cifar-resnet18 --protocol delphi --network lan --plot $(DEMO)/breakdown.png
	$(VENV)/bin/optimizer search --latency-budget 10s --out $(DEMO)/search \
		$$([ -f $(DEMO)/search/frontier.json ] && echo --resume) --no-progress --output $(DEMO)/search.txt
	$(VENV)/bin/pisim report $(DEMO)/search/frontier.json --rows trained --compare deepreduce \
		--plot $(DEMO)/pareto.png --format md --output $(DEMO)/frontier.md
	cat $(DEMO)/frontier.md

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

# The loaders fed mutated model archives, data files and results files for a bounded time (README, Fuzzing).
FUZZ_MINUTES ?= 3
fuzz: setup
	$(PY) -m fuzz.run --minutes $(FUZZ_MINUTES) --failures out/fuzz-failures

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(SPU_VENV) build *.egg-info
