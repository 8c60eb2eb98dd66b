"""A salt-master started from the project's etc/master, one minion per example node."""

import pytest
import yaml

from support.federation import REPO


def test_sync_delivers_the_custom_modules_through_salt_uri(synced_example_minions):
    for minion_id, delivered in synced_example_minions.items():
        assert "modules.evpn" in delivered["modules"], minion_id
        assert {"utils.rule_order", "utils.wgquick", "utils.endpoints"} <= set(delivered["utils"]), minion_id


def test_every_minion_answers_for_itself(synced_example_minions, salt_cli, federation):
    for site_name, site in federation["sites"].items():
        for minion_id, node in site["nodes"].items():
            ret = salt_cli.run("evpn.node", minion_tgt=minion_id)
            assert ret.returncode == 0, ret.stderr
            assert (ret.data["id"], ret.data["site"], ret.data["address"]) == (
                minion_id,
                site_name,
                node["address"],
            )


def test_salt_uri_serves_the_state_tree_and_nothing_else(synced_example_minions, salt_cli):
    minion_id = next(iter(synced_example_minions))
    served = salt_cli.run("cp.list_master", minion_tgt=minion_id).data
    assert {"_modules/evpn.py", "_utils/rule_order.py", "evpn/init.sls", "evpn/map.jinja", "top.sls"} <= set(served)
    assert not [path for path in served if path.startswith(("pillar", "tests", "etc", "evpn/sites"))]
    top = salt_cli.run("cp.get_file_str", "salt://top.sls", minion_tgt=minion_id).data
    assert top == (REPO / "salt" / "top.sls").read_text()


@pytest.mark.parametrize(
    "url",
    [
        "salt://evpn/sites/roz.sls",
        "salt://pillar/top.sls",
        "salt://../pillar/evpn/init.sls",
        "salt://tests/conftest.py",
        "salt://etc/master",
        "salt://_modules/../../pillar/top.sls",
    ],
)
def test_pillar_and_tests_are_unreachable(synced_example_minions, salt_cli, url):
    minion_id = next(iter(synced_example_minions))
    assert salt_cli.run("cp.get_file_str", url, minion_tgt=minion_id).data is False


def test_state_apply_evpn_from_the_master(synced_example_minions, salt_cli):
    for minion_id in synced_example_minions:
        ret = salt_cli.run("state.apply", "evpn", "test=True", minion_tgt=minion_id)
        assert ret.returncode == 0, ret.stderr
        (state,) = [s for s in ret.data.values() if s["__id__"] == "evpn-node"]
        assert state["result"] is True
        assert state["comment"].startswith(f"{minion_id}: site ")


@pytest.fixture
def salt_run(salt_master):
    return salt_master.salt_run_cli(timeout=120)


def test_validate_runner_checks_the_masters_view(synced_example_minions, salt_run, salt_master):
    """salt-run evpn.validate on the pillar the master renders for itself: valid, every node an
    accepted minion; then a node this master has no key from is a warning."""
    ret = salt_run.run("evpn.validate")
    assert ret.returncode == 0, ret.stderr
    assert ret.data == {"data": {"errors": [], "warnings": []}, "outputter": "evpn_validate", "retcode": 0}
    extra = {
        "evpn": {"sites": {"roz": {"nodes": {"pve-roz9": {"address": "10.1.0.9", "endpoint": "roz9.example.net"}}}}}
    }
    with salt_master.pillar_tree.base.temp_file("evpn/sites/zz-extra.sls", yaml.safe_dump(extra)):
        ret = salt_run.run("evpn.validate")
    assert ret.returncode == 0, ret.stderr
    assert ret.data["data"]["warnings"] == [
        "pve-roz9: not an accepted minion of this master (no key from it yet: install and start its salt-minion)"
    ]


@pytest.mark.parametrize(
    "text,cause",
    [
        pytest.param(
            "evpn:\n  sites:\n    zz: [unclosed\n",
            "while parsing a flow sequence in \"<unicode string>\", line 3, column 9 did not find expected ',' or ']' "
            'in "<unicode string>", line 4, column 1',
            id="yaml",
        ),
        pytest.param(
            "{% set octet = %}\nevpn: {}\n",
            "Jinja syntax error: Expected an expression, got 'end of statement block'; line 1",
            id="jinja",
        ),
    ],
)
def test_validate_runner_names_a_file_that_does_not_render_with_salts_message(salt_run, salt_master, text, cause):
    with salt_master.pillar_tree.base.temp_file("evpn/sites/zz.sls", text):
        ret = salt_run.run("evpn.validate")
    assert ret.returncode == 1
    assert ret.data["data"]["errors"] == [
        f"pillar file evpn/sites/zz.sls (SLS evpn.sites.zz): Rendering SLS 'evpn.sites.zz' failed: {cause}"
    ]
    assert ret.data["retcode"] == 1


def test_status_is_data_and_fails_with_a_problem(synced_example_minions, salt_run):
    """These minions run on the test host: no WireGuard interface, no FRR. evpn.status says so per
    node, as data, and exits 1 (a monitoring check fails)."""
    ret = salt_run.run("evpn.status")
    assert ret.returncode == 1
    assert (ret.data["outputter"], ret.data["retcode"]) == ("evpn_status", 1)
    nodes = ret.data["data"]
    assert sorted(nodes) == sorted(synced_example_minions)
    for node_id, node in nodes.items():
        assert set(node) == {"site", "wireguard", "bgp", "evpn_routes", "sdn", "problems"}, node_id
        assert node["problems"][:2] == ["WireGuard: no interface", "BGP: FRR does not answer"], node_id
    assert nodes["pve-roz1"]["sdn"] in ("applied", "pending") and nodes["pve-roz2"]["sdn"] is None


def test_plan_is_data_per_node(synced_example_minions, salt_run):
    ret = salt_run.run("evpn.plan")
    nodes = ret.data["data"]
    assert sorted(nodes) == sorted(synced_example_minions)
    assert ret.returncode == ret.data["retcode"] == (1 if any(n["problems"] for n in nodes.values()) else 0)
    for node_id, node in nodes.items():
        assert "evpn-wireguard" in node["changes"], node_id  # no tunnel on the test host
        assert node["changes"]["evpn-wireguard"]["comment"].startswith("WireGuard interface wg0 would be"), node_id


def test_validate_on_a_minion_whose_pillar_has_a_broken_site_file_exits_1(
    synced_example_minions, salt_cli, salt_master
):
    """The minion gets the pillar without the file and only Salt's "see the master log": it names
    the file, and `salt` exits 1."""
    try:
        with salt_master.pillar_tree.base.temp_file("evpn/sites/zz.sls", "evpn: [unclosed\n"):
            salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="pve-roz1")
            ret = salt_cli.run("evpn.validate", minion_tgt="pve-roz1")
        assert ret.returncode == 1
        assert ret.data["errors"] == [
            "pillar file evpn/sites/zz.sls (SLS evpn.sites.zz): Rendering SLS 'evpn.sites.zz' failed. Please see "
            "master log for details. (the cause is in Salt's log; salt-run evpn.validate on a master shows it)"
        ]
    finally:
        salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="pve-roz1")
    assert salt_cli.run("evpn.validate", minion_tgt="pve-roz1").returncode == 0
