# keyguard — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
APT_PACKAGES := $(shell cat ci/apt-packages.txt 2>/dev/null)

.PHONY: demo test lint typecheck apt bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(DEVSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(STAMP)

# Debian packages the tests use (SoftHSM2, Chromium, fonts …), installed when we are root with apt.
apt:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 && [ -n "$(APT_PACKAGES)" ]; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	else echo "not root with apt: tests needing$(if $(APT_PACKAGES), $(APT_PACKAGES),) skip with the reason"; fi

demo: $(STAMP)
	$(BIN)/keyguard demo

lint: $(DEVSTAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src

test: $(DEVSTAMP) apt lint
	$(BIN)/pytest -n 2 -q --durations=15

BENCHES := vault_inprocess vault_http data_rewrap incident_contain_nodes incident_respond incident_assess \
	scan_throughput scan_accuracy monitor_import monitor_latency lease_expiry

# Every figure of the README, each printed by its own script (several minutes; not part of make test).
bench: $(DEVSTAMP)
	@for b in $(BENCHES); do echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .keyguard build dist src/*.egg-info
