"""A salt-master started from the project's etc/master, one minion per example node."""

import pytest

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
