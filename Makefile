# The README's two commands: `make demo` and `make test`. Each creates .venv and installs
# what it needs first (once; again when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install browser clean

install: $(STAMP)

# BasicSR (the independent reference the parity tests and the training benchmark compare with) is an
# sdist whose setup imports torch, so it is built without isolation, after torch is in.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all]'
	$(PY) -m pip install -q --no-build-isolation basicsr-fixed==1.4.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ggt demo --out ggt-demo

# The review-page test drives a real headless Chromium; install Debian's when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "warning: could not install chromium; the browser test will fail"; \
	  else echo "warning: no chromium on PATH; install it (apt-get install chromium) for the browser test"; fi; }

test: $(STAMP) browser
	$(PY) -m ruff check .
	$(PY) -m pytest

clean:
	rm -rf $(VENV) ggt-demo .pytest_cache
