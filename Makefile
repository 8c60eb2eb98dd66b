# make test       lint, then every tier: unit, functional, integration (real Salt daemons), lab (end to end,
#                 beside the others)
# make test-fast  lint, unit and functional tiers only (no Salt daemons, no lab; about 3 minutes)
# make lint       ruff check and ruff format --check (configuration in pyproject.toml)
# make bench      the benchmarks (bench/), each printing its numbers
# make lab        the local federation in network namespaces (root; PILLAR=dir TOPOLOGY=file for your own)
# make lab-add SITE=krk | NODE=pve-roz3, make lab-remove SITE=krk | NODE=<id>,
# make lab-move SITE=wro [MASTER=down], make lab-rotate NODE=<id>,
# make lab-reboot NODE=<id> [MASTER=down] [DNS_AWAY=20], make lab-status, make lab-shell NODE=<id>, make lab-down
# make packages   the Debian packages the lab and the tests need (root; installs only what is missing)

PYTHON ?= python3
VENV   ?= .venv
PYTEST := $(VENV)/bin/pytest

.PHONY: test test-fast lint bench packages venv lab lab-add lab-move lab-remove lab-rotate lab-reboot lab-status lab-shell lab-down

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

# Lab nodes are network namespaces running these programs; the test tiers build lab nodes too.
PACKAGES := wireguard-go wireguard-tools frr frr-pythontools dnsmasq-base ifupdown2 nftables iptables ipset conntrack iproute2 iputils-ping procps

packages:
	@test "$$(id -u)" = 0 || { echo "make packages: the lab and the tests make network namespaces: run as root" >&2; exit 1; }
	@missing=$$(python3 -c 'import venv, ensurepip' 2>/dev/null || echo python3-venv; for p in $(PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The lab tier mostly waits (handshakes, BGP, firewall rounds): it runs beside the other tiers,
# its report printed after theirs.
LAB_REPORT := /tmp/evpn-lab-tier.log

test: packages venv lint
	@$(PYTEST) -m lab -p no:cacheprovider --basetemp=/tmp/evpn-lab-tier > $(LAB_REPORT) 2>&1 & lab=$$!; \
	$(PYTEST) -m "not lab"; others=$$?; \
	wait $$lab; labs=$$?; \
	echo "=== lab tier (tests/lab, marker lab) ==="; cat $(LAB_REPORT); \
	test $$others = 0 && test $$labs = 0

test-fast: packages venv lint
	$(PYTEST) -m "not integration and not lab"

bench: packages venv
	$(VENV)/bin/python bench/federation.py
	$(VENV)/bin/python bench/sdn.py
	$(VENV)/bin/python bench/wireguard.py
	$(VENV)/bin/python bench/endpoints.py
	$(VENV)/bin/python bench/lab.py

lab: packages venv
	$(VENV)/bin/python lab/evpnlab.py up $(if $(PILLAR),--pillar $(PILLAR)) $(if $(TOPOLOGY),--topology $(TOPOLOGY))

lab-add: venv
	$(VENV)/bin/python lab/evpnlab.py add $(if $(SITE),--site $(SITE)) $(if $(NODE),--node $(NODE))

lab-move: venv
	$(VENV)/bin/python lab/evpnlab.py move $(SITE) $(if $(filter down,$(MASTER)),--master-down)

lab-remove: venv
	$(VENV)/bin/python lab/evpnlab.py remove $(if $(SITE),--site $(SITE)) $(if $(NODE),--node $(NODE))

lab-rotate: venv
	$(VENV)/bin/python lab/evpnlab.py rotate $(NODE)

lab-reboot: venv
	$(VENV)/bin/python lab/evpnlab.py reboot $(NODE) $(if $(filter down,$(MASTER)),--master-down) $(if $(DNS_AWAY),--dns-away $(DNS_AWAY))

lab-status: venv
	$(VENV)/bin/python lab/evpnlab.py status

lab-shell: venv
	$(VENV)/bin/python lab/evpnlab.py shell $(NODE)

lab-down: venv
	$(VENV)/bin/python lab/evpnlab.py down
