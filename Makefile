# SeedPlan: two commands set everything up on a fresh machine.
#   make run    create/refresh .venv, install, open the GUI on the demo case
#   make test   the same set-up plus test tools and system libraries, then the whole suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.seedplan-installed

# System libraries PySide6 + VTK need to render under Xvfb (see DESIGN.md), and dciodvfy.
APT_PACKAGES := xvfb xauth libgl1-mesa-dri libegl1 libglib2.0-0 libdbus-1-3 libfontconfig1 \
	fonts-dejavu-core libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 \
	libxcb-shape0 libxcb-image0 libxcb-render-util0 dicom3tools poppler-utils

PYTEST_ARGS ?=
# The test session starts its own Xvfb (tests/conftest.py), found when pytest runs, i.e. after
# `sysdeps` installed it; nothing here looks for Xvfb while the Makefile is being read.
SCREEN := 1280x1024x24

.PHONY: run test bench lint format sysdeps venv clean demo screenshot

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "Could not create a virtual environment: install python3-venv (apt-get install python3-venv)"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet 'setuptools>=77' wheel
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

sysdeps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "Installing system packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "Missing system packages; install them with:"; \
	  echo "  sudo apt-get install -y $$missing"; \
	else \
	  echo "Not a Debian/Ubuntu system: install the equivalents of: $$missing"; \
	fi

run: sysdeps $(STAMP)
	$(BIN)/seedplan gui

# Refresh the README screenshots from the real windows on the demo case: the main window, and
# the post-op window verifying the demo plan's day-0 CT (written to out/demo).
screenshot: sysdeps $(STAMP)
	mkdir -p out && $(BIN)/seedplan demo --out out/demo --force
	@if [ -n "$$DISPLAY" ]; then RUN=""; else RUN='xvfb-run -a -s "-screen 0 $(SCREEN)"'; fi; \
	eval $$RUN $(BIN)/seedplan gui --screenshot docs/screenshot.png && \
	eval $$RUN $(BIN)/seedplan gui out/demo/plan.seedplan --postop out/demo/postop \
	  --screenshot docs/postop.png --size 1600x1000

# Two xdist workers (two cores); one Xvfb for the whole run, inherited by workers and children.
test: sysdeps $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

# Write the demo case (CT, masks, plan, post-op CT) to out/demo.
demo: $(STAMP)
	mkdir -p out && $(BIN)/seedplan demo --out out/demo --force

bench: $(STAMP)
	$(BIN)/seedplan bench

lint: $(STAMP)
	$(BIN)/ruff check app planner dose resources tests benchmarks
	$(BIN)/ruff format --check app planner dose resources tests benchmarks
	$(BIN)/lint-imports --no-cache --no-logo

format: $(STAMP)
	$(BIN)/ruff format app planner dose resources tests benchmarks
	$(BIN)/ruff check --fix app planner dose resources tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache .ci/out build dist *.egg-info
