# Two entry points: `make demo` (the main job) and `make test`; `make docs` builds the documentation.
# Each creates .venv on first use from the pinned constraints.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-all docs data clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[test,docs]"
	touch $@

# Offline Fashion-MNIST (Debian package); skipped with a note elsewhere.
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null)) \
	  || echo "note: could not install dataset-fashion-mnist; Fashion-MNIST needs --root"; \
	else echo "note: not Debian/root: Fashion-MNIST needs a torchvision root (--root)"; fi

demo: $(VENV)/.installed data
	$(VENV)/bin/vaemanifold demo

test: $(VENV)/.installed data
	$(PY) -m pytest -q

test-all: $(VENV)/.installed data
	$(PY) -m pytest -q -m ""

# Strict: warnings are errors and every cross-reference must resolve (-n).
docs: $(VENV)/.installed
	$(VENV)/bin/sphinx-build -W -n --keep-going -b html docs build/docs

clean:
	rm -rf $(VENV) runs out build
