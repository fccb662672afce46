# Two commands on a fresh machine with only Python 3:  make run  |  make test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
EMBED  := $(PY) -m adiuva.embedded run --

.PHONY: run test install browser lint format migrate shell lock bench clean-data

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
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

test: install browser
	$(EMBED) $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

migrate: install
	$(EMBED) $(PY) manage.py migrate

shell: install
	$(EMBED) $(PY) manage.py shell

lock: install
	$(PY) -m pip install --quiet -r requirements.in && $(PY) -m pip freeze --exclude-editable > requirements.txt

clean-data:
	rm -rf .data
