# Two commands on a fresh machine with only Python 3:  make run  |  make test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
EMBED  := $(PY) -m adiuva.embedded run --

.PHONY: run test install lint format migrate shell lock bench clean-data

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

run: install
	$(EMBED) $(PY) manage.py runstack

test: install
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
