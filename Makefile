# make test       every tier: unit, functional, integration (real Salt daemons)
# make test-fast  unit and functional tiers only (no daemons, seconds)
# make bench      the federation model on 100 sites; pvesh calls of an SDN converge;
#                 wg calls of a 300-peer WireGuard converge; DNS update to peers re-pointed (root)
# make lab        the local federation in network namespaces

PYTHON ?= python3
VENV   ?= .venv
PYTEST := $(VENV)/bin/pytest

.PHONY: test test-fast bench lab venv

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

test: venv
	$(PYTEST)

test-fast: venv
	$(PYTEST) -m "not integration"

bench: venv
	$(VENV)/bin/python bench/federation.py
	$(VENV)/bin/python bench/sdn.py
	$(VENV)/bin/python bench/wireguard.py
	$(VENV)/bin/python bench/endpoints.py

lab:
	@echo "make lab: the network-namespace lab is not built yet (it lands with the lab issue)." >&2
	@exit 1
