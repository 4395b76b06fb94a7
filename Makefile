# One entry point for people and CI. `make app` opens the app on the bundled example project,
# after `make app-env` made its environment once; `make test` installs the test dependencies and
# runs the whole suite (what .ci/run calls).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.app-env-done
# Which PyTorch `make app-env` installs: auto (the CPU build on Linux without an NVIDIA GPU,
# PyPI's elsewhere), cpu, or default (PyPI's, with CUDA on Linux). src/trainer_gui/core/pyenv.py
TORCH_BUILD ?= auto

.PHONY: app app-env install install-test test lint bench clean package-check sdk-envs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

# The app's environment: the package and a PyTorch that fits this machine, installed once. The
# stamp in the venv says it is done; only a changed pyproject.toml (or a new venv) runs pip again.
$(APP_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m trainer_gui.core.pyenv ensure-torch --build $(TORCH_BUILD)
	touch $@

app-env: $(APP_STAMP)

app: app-env
	$(BIN)/trainer-gui gui --example

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The SageMaker Python SDKs the export and import tests run (tests/aws/sdk_envs.py): V2 and V3
# cannot share an environment, so each gets its own venv. The stamp inside makes a second run
# instant; a changed Makefile (new pins) runs pip again in the same venv.
# nest-asyncio: V2's sagemaker.aws_batch (the Batch queue export) needs it and does not pull it.
SDK_V2_REQS ?= 'sagemaker>=2.200,<3' 'nest-asyncio>=1.5,<2'
SDK_V3_REQS ?= 'sagemaker-train>=1,<2'
SDK2_STAMP := .venv-sdk2/.sdk-env-done
SDK3_STAMP := .venv-sdk3/.sdk-env-done

$(SDK2_STAMP): Makefile
	test -x .venv-sdk2/bin/python || $(PYTHON) -m venv .venv-sdk2
	.venv-sdk2/bin/python -m pip install --quiet $(SDK_V2_REQS)
	touch $@

$(SDK3_STAMP): Makefile
	test -x .venv-sdk3/bin/python || $(PYTHON) -m venv .venv-sdk3
	.venv-sdk3/bin/python -m pip install --quiet $(SDK_V3_REQS)
	touch $@

sdk-envs: $(SDK2_STAMP) $(SDK3_STAMP)

test: install-test lint sdk-envs
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python bench/metrics_parse.py

# -- package-check: build the Linux bundle, .tar.gz and .deb and smoke-test them (install in a
# clean Debian container, main window under Xvfb, example job, purge). Run before every release
# commit; 3-6 min. Needs Xvfb, xdotool and Docker (docs/packaging.md).
package-check: install-test
	$(BIN)/python -m pip install --quiet -e '.[test,package]'
	bash scripts/ci/make-base-image.sh
	bash scripts/package_check.sh
# -- end package-check

clean:
	rm -rf $(VENV) .venv-sdk2 .venv-sdk3 build dist .pytest_cache .mypy_cache .ruff_cache
