# Two commands on a fresh machine with only Python 3:  make run  |  make test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# requirements.txt: what production runs (the Dockerfile installs only it); requirements-dev.txt:
# it plus tests, lint, benchmarks and the embedded services of `make run` / `make test`.
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
EMBED  := $(PY) -m adiuva.embedded run --

.PHONY: run test install browser lint format migrate shell lock bench clean-data

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

# Browser tests drive Debian's chromium through its chromedriver, both from apt (never a browser
# download at run time). Installed once, only when missing; as root (CI) or with a hint otherwise.
BROWSER_PACKAGES := chromium chromium-driver
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" -eq 0 ]; then \
	    echo "Installing $(BROWSER_PACKAGES) for the browser tests (apt, once)..."; \
	    apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null \
	      || { echo "apt-get could not install $(BROWSER_PACKAGES)" >&2; exit 1; }; \
	  else \
	    echo "Browser tests will be skipped: chromium is missing and only root can apt-get it. Run:" >&2; \
	    echo "  sudo apt-get install -y --no-install-recommends $(BROWSER_PACKAGES)" >&2; \
	  fi; \
	fi

run: install
	$(EMBED) $(PY) manage.py runstack

# The suite runs in PYTEST_WORKERS processes (pytest-xdist), each on a test database and Redis databases
# of its own; a file's tests stay on one worker. PYTEST_WORKERS=0 runs it in this one process.
PYTEST_WORKERS ?= 2
test: install browser
	$(EMBED) $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy apps adiuva bench tests conftest.py

format: install
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

migrate: install
	$(EMBED) $(PY) manage.py migrate

shell: install
	$(EMBED) $(PY) manage.py shell

# Re-pin both files in a throwaway venv, so the runtime pins hold only what requirements.in pulls.
LOCK_VENV := .lock-venv
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.in
	$(LOCK_VENV)/bin/pip freeze --exclude-editable > requirements.txt
	$(LOCK_VENV)/bin/pip install --quiet --disable-pip-version-check -c requirements.txt -r requirements-dev.in
	(echo "-r requirements.txt"; $(LOCK_VENV)/bin/pip freeze --exclude-editable | grep -vxFf requirements.txt) > requirements-dev.txt
	rm -rf $(LOCK_VENV)

clean-data:
	rm -rf .data
