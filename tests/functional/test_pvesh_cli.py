"""lab/bin/pvesh as a command: what it prints, its exit codes, and the PVESIM_* knobs."""

import concurrent.futures
import json
import os
import subprocess
import sys

import pytest
import yaml

from support.federation import REPO

PVESH = REPO / "lab" / "bin" / "pvesh"
USAGE = "\n\npvesh create <api_path> [OPTIONS] [FORMAT_OPTIONS]\n"


@pytest.fixture
def pvesh(tmp_path, pve_version):
    env = {
        **os.environ,
        "PVESIM_ROOT": str(tmp_path / "cluster"),
        "PVESIM_NODE": "pve1",
        "PVESIM_VERSION": pve_version,
        "PVESIM_LOG": str(tmp_path / "pvesh.log"),
    }

    def run(*args, **extra_env):
        return subprocess.run(
            [sys.executable, str(PVESH), *args],
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    run.log = tmp_path / "pvesh.log"
    return run


def _controller_and_zone(pvesh):
    assert (
        pvesh(
            "create",
            "/cluster/sdn/controllers",
            "--controller",
            "evpnctl",
            "--type",
            "evpn",
            "--asn",
            "65000",
            "--peers",
            "10.1.0.1",
            "--peers",
            "10.2.0.1",
        ).returncode
        == 0
    )
    return pvesh(
        "create",
        "/cluster/sdn/zones",
        "--zone",
        "evpn",
        "--type",
        "evpn",
        "--controller",
        "evpnctl",
        "--vrf-vxlan",
        "10000",
        "--exitnodes-local-routing",
        "0",
    )


def test_the_zone_option_pve_knows_and_the_one_it_refuses(pvesh):
    refused = pvesh(
        "create",
        "/cluster/sdn/zones",
        "--zone",
        "evpn",
        "--type",
        "evpn",
        "--controller",
        "evpnctl",
        "--vrf-vxlan",
        "10000",
        "--exit_nodes_local_routing",
        "0",
    )
    assert (refused.returncode, refused.stdout) == (255, "")
    assert refused.stderr == "Unknown option: exit_nodes_local_routing\n400 unable to parse option" + USAGE
    created = _controller_and_zone(pvesh)
    assert (created.returncode, created.stdout, created.stderr) == (0, "", "")


def test_parameter_errors_on_stderr_with_usage(pvesh):
    proc = pvesh("create", "/cluster/sdn/vnets", "--vnet", "toolongvnet", "--zone", "evpn", "--tag", "x")
    assert proc.returncode == 255
    assert proc.stderr == (
        "400 Parameter verification failed.\n"
        "tag: type check ('integer') failed - got 'x'\n"
        "vnet: invalid format - vnet ID 'toolongvnet' can't be more length than 8 characters" + USAGE
    )


def test_unknown_path_exit_1(pvesh):
    proc = pvesh("get", "/cluster/nothing")
    assert (proc.returncode, proc.stderr) == (1, "No 'get' handler defined for '/cluster/nothing'\n")


def test_output_formats(pvesh):
    _controller_and_zone(pvesh)
    one_line = pvesh("get", "/cluster/sdn/controllers", "--output-format", "json").stdout
    assert one_line.count("\n") == 1 and one_line.startswith('[{"asn":65000,"controller":"evpnctl",')
    pretty = pvesh("get", "/cluster/sdn/controllers/evpnctl", "--output-format", "json-pretty").stdout
    assert pretty.startswith('{\n   "asn" : 65000,\n   "controller" : "evpnctl",')
    assert json.loads(pretty) == json.loads(one_line)[0]
    assert yaml.safe_load(pvesh("get", "/cluster/sdn/controllers", "--output-format", "yaml").stdout) == json.loads(
        one_line
    )
    table = pvesh("get", "/cluster/sdn/controllers/evpnctl").stdout
    assert "| peers " in table and "10.1.0.1,10.2.0.1" in table
    applied = pvesh("set", "/cluster/sdn")
    assert applied.returncode == 0
    assert applied.stdout.splitlines()[0] == "pve1: reloading network config"
    assert applied.stdout.splitlines()[-1].startswith("UPID:pve1:")
    ls = pvesh("ls", "/cluster/sdn/zones").stdout
    assert ls == "-rw-d        evpn\n"


def test_root_is_required(pvesh):
    proc = pvesh("get", "/cluster/sdn/zones", PVESIM_ROOT="")
    assert proc.returncode == 255 and "PVESIM_ROOT is not set" in proc.stderr


def test_log_one_line_per_call(pvesh):
    _controller_and_zone(pvesh)
    pvesh("get", "/cluster/sdn/zones", "--pending", "1")
    records = [json.loads(line) for line in pvesh.log.read_text().splitlines()]
    assert [(r["method"], r["path"], r["exit"]) for r in records] == [
        ("POST", "/cluster/sdn/controllers", 0),
        ("POST", "/cluster/sdn/zones", 0),
        ("GET", "/cluster/sdn/zones", 0),
    ]
    assert records[0]["params"]["peers"] == "10.1.0.1,10.2.0.1"
    assert records[2]["argv"] == ["get", "/cluster/sdn/zones", "--pending", "1"]
    assert all(r["node"] == "pve1" and r["duration"] >= 0 for r in records)


def test_fault_injection_fails_the_nth_matching_call(pvesh):
    _controller_and_zone(pvesh)
    rule = {"PVESIM_FAIL": "POST:/cluster/sdn/vnets:2"}
    results = [
        pvesh("create", "/cluster/sdn/vnets", "--vnet", f"v{i}", "--zone", "evpn", "--tag", str(i), **rule)
        for i in (1, 2, 3)
    ]
    assert [r.returncode for r in results] == [0, 255, 0]
    assert "injected failure of POST /cluster/sdn/vnets" in results[1].stderr
    vnets = json.loads(pvesh("get", "/cluster/sdn/vnets", "--output-format", "json").stdout)
    assert [v["vnet"] for v in vnets] == ["v1", "v3"]


def test_delay_is_added_to_every_call(pvesh):
    pvesh("get", "/cluster/sdn/zones", PVESIM_DELAY="0.3")
    (record,) = [json.loads(line) for line in pvesh.log.read_text().splitlines()]
    assert record["duration"] >= 0.3


def test_concurrent_writers_lose_nothing(pvesh):
    _controller_and_zone(pvesh)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        procs = list(
            pool.map(
                lambda i: pvesh(
                    "create", "/cluster/sdn/vnets", "--vnet", f"v{i}", "--zone", "evpn", "--tag", str(100 + i)
                ),
                range(16),
            )
        )
    assert [p.returncode for p in procs] == [0] * 16, [p.stderr for p in procs if p.returncode]
    vnets = json.loads(pvesh("get", "/cluster/sdn/vnets", "--output-format", "json").stdout)
    assert sorted(v["vnet"] for v in vnets) == sorted(f"v{i}" for i in range(16))


def test_lock_token_option_only_on_9(pvesh, pve_version):
    proc = pvesh("set", "/cluster/sdn", "--lock-token", "x")
    if pve_version == "8.4":
        assert proc.stderr.startswith("Unknown option: lock-token\n400 unable to parse option")
    else:
        assert proc.stderr.startswith("could not commit SDN config: invalid lock token provided!")


def test_usage_from_the_schema(pvesh):
    proc = pvesh("usage", "/cluster/sdn/zones")
    assert proc.stdout.splitlines() == [
        "USAGE: pvesh get /cluster/sdn/zones [OPTIONS]",
        "USAGE: pvesh create /cluster/sdn/zones --type <string> --zone <string> [OPTIONS]",
    ]
    verbose = pvesh("usage", "/cluster/sdn/zones", "--command", "create", "--verbose").stdout
    assert "  --vrf-vxlan " in verbose and "  --exitnodes-local-routing " in verbose


def test_version_recorded_in_the_cluster_root(pvesh, tmp_path):
    (tmp_path / "cluster").mkdir(exist_ok=True)
    (tmp_path / "cluster" / "pvesim-version").write_text("8.4\n")
    proc = pvesh("create", "/cluster/sdn/lock", PVESIM_VERSION="")
    assert (proc.returncode, proc.stderr) == (1, "No 'create' handler defined for '/cluster/sdn/lock'\n")
