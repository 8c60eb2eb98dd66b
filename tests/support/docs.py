"""
The shell commands README.md and docs/*.md show: every line of a ``sh`` code block, and every
inline code span that starts with a program name. tests/unit/test_docs_commands.py and
tests/integration/test_docs.py check that each is run by a test or needs real PVE hardware.
"""

import re

from support.federation import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PROGRAMS = {
    "salt",
    "salt-run",
    "salt-key",
    "salt-call",
    "salt-ssh",
    "salt-master",
    "make",
    "apt",
    "curl",
    "systemctl",
    "pvesh",
    "pve-firewall",
    "pvecm",
    "wg",
    "vtysh",
    "ping",
    "nft",
}
FENCE = re.compile(r"^\s*```(\S*)\s*$")
INLINE = re.compile(r"`([^`\n]+)`")


def fences(text):
    """(info string, [lines]) of every fenced code block."""
    blocks, info, lines = [], None, []
    for line in text.splitlines():
        fence = FENCE.match(line)
        if fence and info is None:
            info, lines = fence.group(1), []
        elif fence:
            blocks.append((info, lines))
            info = None
        elif info is not None:
            lines.append(line.strip())
    return blocks


def _command(line):
    """A command line without its trailing comment and repeated spaces."""
    return " ".join(re.sub(r"\s+#\s.*$", "", line).split())


def commands():
    """{command: [documents that show it]}."""
    shown = {}
    for document in DOCUMENTS:
        text = document.read_text()
        found = [_command(line) for info, lines in fences(text) if info == "sh" for line in lines]
        outside = re.sub(r"(?ms)^\s*```.*?^\s*```", "", text)  # inline spans outside code blocks
        spans = [span for span in INLINE.findall(outside) if len(span.split()) > 1]  # a bare name is no command
        found += [_command(span) for span in spans if span.split()[0] in PROGRAMS]
        for command in filter(None, found):
            shown.setdefault(command, []).append(document.name)
    return shown


# Run by tests/integration/test_docs.py as shown, against the salt-master of etc/master and the
# example minions (emulated PVE nodes on the test host), a placeholder filled in (PLACEHOLDERS):
# command -> the exit code it gives there.
PLACEHOLDERS = {"<leader>": "pve-roz1"}
RUN_HERE = {
    "salt '*' saltutil.sync_all": 0,
    "salt '*' evpn.validate": 0,
    "salt '*' state.apply evpn test=True": 0,
    "salt '*' mine.update": 0,
    "salt pve-roz1 pvenode.missing": 0,
    "salt pve-roz1 wireguard.resolve wro.example.net:51820": 0,
    "salt-run evpn.validate": 0,
    "salt-run evpn.plan": 0,
    "salt-run evpn.status": 1,  # no tunnel and no FRR on the test host: a problem per node
    "salt-run evpn.status --out=json": 1,
    "salt-key -L": 0,
    "salt-key -f pve-roz1": 0,
    "salt-key -a pve-roz1": 0,
    "salt-key -F master": 0,
    "salt-call --local key.finger": 0,  # on pve-roz1
    "salt '<leader>' evpn.firewall": 0,  # <leader>: pve-roz1, roz's SDN leader
    "salt '<leader>' state.apply evpn.firewall test=True": 0,  # <leader>: pve-roz1
    "salt-call --id pve-roz1 --pillar-root lab/pillar evpn.validate": 0,  # masterless, from the checkout
}

# Run by a test (or, where said, a benchmark) in another form: command -> (file, what of it the
# file must hold). These change nodes, so they run in lab nodes, not on the test host.
RUN_ELSEWHERE = {
    "salt-run state.orchestrate orch.evpn": (
        "tests/integration/test_orchestrate.py",
        '"state.orchestrate", "orch.evpn"',
    ),
    "salt-run -l info state.orchestrate orch.evpn": ("lab/salt_daemons.py", 'argv[1:1] = ["-l", "info"]'),
    'salt-run state.orchestrate orch.evpn pillar=\'{"removed": ["pve-roz2"]}\'': (
        "lab/federation_lab.py",
        '"state.orchestrate", "orch.evpn", f"pillar={json.dumps({\'removed\': node_ids})}"',
    ),
    'salt-run state.orchestrate orch.evpn pillar=\'{"removed": ["pve-krk1"]}\'': (
        "tests/lab/test_lab_remove.py",
        'remove(lab, ["pve-krk1"])',
    ),
    "salt-run cache.mine": ("lab/federation_lab.py", 'self.master.run("cache.mine")'),
    'salt-run state.orchestrate orch.rotate_key pillar=\'{"nodes": ["pve-wro1"]}\'': (
        "lab/evpnlab.py",
        '"state.orchestrate", "orch.rotate_key", f"pillar={json.dumps({\'nodes\': [node_id]})}"',
    ),
    'salt-run state.orchestrate orch.rotate_key pillar=\'{"nodes": "all"}\'': (
        "tests/lab/test_lab_lifecycle.py",
        '"state.orchestrate_show_sls", "orch.rotate_key", \'pillar={"nodes": "all"}\'',
    ),
    "make lab-remove SITE=krk": ("bench/lab.py", 'evpnlab("remove", "--site", "krk")'),  # make bench, no test
    "make lab-rotate NODE=pve-wro1": ("tests/lab/test_lab_lifecycle.py", 'evpnlab("rotate", "pve-wro1")'),
    "make lab-reboot NODE=pve-wro1 MASTER=down DNS_AWAY=20": (
        "tests/lab/test_lab_lifecycle.py",
        'evpnlab("reboot", "pve-wro1", "--master-down", "--dns-away", "20")',
    ),
    "make lab-move SITE=wro MASTER=down": (
        "tests/lab/test_lab_lifecycle.py",
        'evpnlab("move", "wro", "--master-down")',
    ),
    "salt-key -y -d pve-roz2": (
        "tests/lab/test_lab_remove.py",
        '"salt-key"), "-c", str(lab.master.config_dir), "-y", "-d"',
    ),
    "salt-key -y -d pve-krk1": (
        "tests/lab/test_lab_remove.py",
        '"salt-key"), "-c", str(lab.master.config_dir), "-y", "-d"',
    ),
    "salt pve-krk1 state.apply evpn.absent test=True": (
        "tests/functional/test_absent.py",
        'call("state.apply", "evpn.absent", "test=True")',
    ),
    "salt pve-krk1 state.apply evpn.absent": ("tests/functional/test_absent.py", 'call("state.apply", "evpn.absent")'),
    "salt '*' state.apply evpn.absent": ("tests/functional/test_absent.py", 'call("state.apply", "evpn.absent")'),
    "salt '*' state.apply evpn": ("tests/integration/test_orchestrate.py", '"*", "state.apply", "evpn"'),
    "salt pve-roz1 state.apply evpn": ("tests/integration/test_orchestrate.py", '"*", "state.apply", "evpn"'),
    "salt-call --id pve-roz1 --pillar-root lab/pillar state.apply evpn test=True": (
        "tests/functional/test_state_tree.py",
        'state.apply("evpn", test=True)',
    ),
    "make lab": ("tests/lab/conftest.py", 'evpnlab("up")'),
    "make lab PILLAR=mypillar TOPOLOGY=mytopology.yaml": (
        "tests/lab/test_lab_own_federation.py",
        'evpnlab("up", "--pillar", str(pillar), "--topology", str(topology))',
    ),
    "make lab-add NODE=pve-roz3": ("tests/lab/test_lab.py", 'evpnlab("add", "--node", "pve-roz3")'),
    "make lab-add SITE=krk": ("bench/lab.py", 'evpnlab("add", "--site", "krk")'),  # make bench, no test
    "make lab-move SITE=wro": ("tests/lab/test_lab.py", 'evpnlab("move", "wro")'),
    "make lab-status": ("tests/lab/test_lab.py", 'evpnlab("status")'),
    "make lab-shell NODE=pve-roz1": ("tests/lab/test_lab.py", '"shell", "pve-roz2"'),
    "make lab-down": ("tests/support/labrun.py", 'self("down")'),
    "make test": (".ci/run", "make test"),
    "make test-fast": ("Makefile", '$(PYTEST) -m "not integration and not lab"'),
    "make packages": ("Makefile", "test: packages venv lint"),
    "make venv": ("Makefile", "test: packages venv lint"),
    "cd /srv/evpn && make venv": ("Makefile", "test: packages venv lint"),
    "make bench": ("Makefile", "bench: packages venv"),
    "wg show wg0": ("tests/lab/test_lab.py", '"wg", "show", "wg0"'),
    "salt '*' wireguard.show": ("tests/functional/test_wireguard.py", 'salt_call(node, "wireguard.show")'),
    "vtysh -c 'show bgp l2vpn evpn summary'": ("tests/support/labrun.py", '"show bgp l2vpn evpn summary json"'),
    "ping -M do -s 1342 10.2.1.10": ("tests/lab/test_lab.py", '"-M", "do", "-s", "1342"'),
}

# Only on real hosts: they install packages, change a host's configuration, or are Proxmox VE's
# own tools, which the lab emulates only as pvesh's API.
NEEDS_REAL_PVE = {
    "mkdir -m 755 -p /etc/apt/keyrings",
    "curl -fsSL https://packages.broadcom.com/artifactory/api/security/keypair/SaltProjectKey/public"
    " | gpg --dearmor -o /etc/apt/keyrings/salt-archive-keyring.pgp",
    "curl -fsSL https://github.com/saltstack/salt-install-guide/releases/latest/download/salt.sources"
    " -o /etc/apt/sources.list.d/salt.sources",
    "printf 'Package: salt-*\\nPin: version 3008.4*\\nPin-Priority: 1001\\n' > /etc/apt/preferences.d/salt-pin-1001",
    "apt update",
    "apt install salt-minion",
    "apt install git make python3-venv",
    "git clone <this repository> /srv/evpn",
    "systemctl daemon-reload",
    "systemctl enable --now evpn-salt-master",
    "systemctl restart salt-minion",
    "systemctl status frr",
    "systemctl is-enabled wg-quick@wg0",
    "grep -n 'source /etc/network/interfaces.d' /etc/network/interfaces",
    "echo 'source /etc/network/interfaces.d/*' >> /etc/network/interfaces",
    "pvecm nodes",
    "pvecm delnode pve-roz2",
    "pve-firewall status",
    "pvesh get /cluster/firewall/options",
    "pvesh set /cluster/firewall/options --enable 0",
    "pve-firewall compile",
    "nft list ruleset",
    "salt-ssh '*' state.apply evpn",  # SSH to real nodes
}

# Named in prose, not shown to be run.
NOT_COMMANDS = {"wg syncconf"}
