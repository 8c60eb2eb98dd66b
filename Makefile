# make test       every tier: unit, functional, integration (real Salt daemons), lab (make lab end to end)
# make test-fast  unit and functional tiers only (no daemons, seconds)
# make bench      the federation model on 100 sites; pvesh calls of an SDN converge;
#                 wg calls of a 300-peer WireGuard converge; DNS update to peers re-pointed (root)
# make lab        the local federation in network namespaces (root; SITES=3 for three sites)
# make lab-status, make lab-move NODE=wro, make lab-down

PYTHON ?= python3
VENV   ?= .venv
PYTEST := $(VENV)/bin/pytest

.PHONY: test test-fast bench lab lab-packages lab-down lab-status lab-move venv

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

test: venv
	$(PYTEST)

test-fast: venv
	$(PYTEST) -m "not integration and not lab"

bench: venv
	$(VENV)/bin/python bench/federation.py
	$(VENV)/bin/python bench/sdn.py
	$(VENV)/bin/python bench/wireguard.py
	$(VENV)/bin/python bench/endpoints.py
	$(VENV)/bin/python bench/lab.py

# The lab: root, and Debian packages the lab needs (installed when missing).
LAB_PACKAGES := wireguard-go wireguard-tools frr frr-pythontools dnsmasq-base ifupdown2 iproute2 iputils-ping procps

lab-packages:
	@test "$$(id -u)" = 0 || { echo "make lab: the lab makes network namespaces: run it as root" >&2; exit 1; }
	@missing=$$(python3 -c 'import venv, ensurepip' 2>/dev/null || echo python3-venv; for p in $(LAB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi

lab: lab-packages venv
	$(VENV)/bin/python lab/evpnlab.py up --sites $(or $(SITES),2)

lab-down: venv
	$(VENV)/bin/python lab/evpnlab.py down

lab-status: venv
	$(VENV)/bin/python lab/evpnlab.py status

lab-move: venv
	$(VENV)/bin/python lab/evpnlab.py move $(NODE)
