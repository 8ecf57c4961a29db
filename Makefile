# The two commands of the README: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint docs clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/mtlzoo demo

# pytest exits 5 when it collects nothing: that is a failure, not a pass.
test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --dist loadfile; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; exit $$status

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check mtlzoo tests benchmarks docs weights hubconf.py

# The documentation site (docs/, mkdocs.yml) into site/; --strict turns every warning into a failure.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
