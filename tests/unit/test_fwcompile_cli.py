"""lab/bin/pve-firewall-compile: the environment it takes and the JSON it prints."""

import json
import subprocess
import sys

from support.federation import REPO


def test_command_prints_the_result_as_json(tmp_path):
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"host_ips": ["192.168.2.11"], "interface_cidrs": ["192.168.2.11/24"]}))
    (tmp_path / "firewall").mkdir()
    (tmp_path / "nodes" / "pve1").mkdir(parents=True)
    (tmp_path / "firewall" / "cluster.fw").write_text("[OPTIONS]\n\nenable: 1\n")
    (tmp_path / "nodes" / "pve1" / "host.fw").write_text("[OPTIONS]\n\nnftables: 1\n")
    env = {"PVESIM_ROOT": str(tmp_path), "PVESIM_NODE": "pve1", "PVESIM_VERSION": "8.4", "PATH": "/usr/bin:/bin"}
    command = [
        sys.executable,
        str(REPO / "lab" / "bin" / "pve-firewall-compile"),
        "--facts",
        str(facts),
        "--state",
        "/dev/stdin",
    ]
    run = subprocess.run(command, input="{}", capture_output=True, text=True, env=env, check=True)
    result = json.loads(run.stdout)
    assert set(result) == {"backend", "outcome", "message", "warnings", "adaptations", "versions", "load"}
    assert result["versions"] == {"pve-firewall": "5.1.1", "proxmox-firewall": "0.7.1"}
    assert result["backend"] == "nftables"
    missing = subprocess.run(command, input="{}", capture_output=True, text=True, env={"PATH": "/bin"}, check=False)
    assert missing.returncode == 2 and "PVESIM_ROOT is not set" in missing.stderr
