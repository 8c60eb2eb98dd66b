"""
Masterless use from the checkout root, as a user tries the tree on one node: ``salt-call``
picks up the Saltfile, which points at etc/minion (the checkout's own salt/, pillar/ and custom
modules, no sync step). The checkout's pillar/ holds no site (a real deployment adds its own);
the lab's example sites are one ``--pillar-root lab/pillar`` away.
"""

import functools
import json
import os
import py_compile
import shutil
import uuid

import pytest
import yaml

from support.federation import PILLAR, REPO
from support.saltconfig import salt_call as checkout_salt_call


@pytest.fixture
def salt_call():
    cachedir = f"/var/cache/salt/test-{uuid.uuid4().hex}"
    yield functools.partial(checkout_salt_call, cachedir=cachedir)
    root_dir = REPO / yaml.safe_load((REPO / "etc" / "minion").read_text())["root_dir"]
    shutil.rmtree(root_dir / cachedir.lstrip("/"))


def _local(proc):
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)["local"]


def test_validate_on_the_example_pillar(salt_call):
    proc = salt_call("--id", "pve-roz1", "--pillar-root", str(PILLAR), "evpn.validate")
    assert proc.returncode == 0, proc.stderr
    assert _local(proc) == {"errors": [], "warnings": []}


def test_the_checkout_pillar_has_no_site_and_says_so(salt_call):
    """The shipped example sites are out of a real deployment's way: the checkout's own pillar
    includes no site, and validate says what to add, with a failing exit code."""
    proc = salt_call("--id", "pve-roz1", "evpn.validate")
    assert proc.returncode == 1
    assert _local(proc)["errors"] == [
        "pillar files evpn/sites/*.sls (include evpn.sites.*): none exists yet, add one per site: "
        "Specified SLS 'evpn.sites.*' in environment 'base' is not available on the salt master",
        "evpn:sites: is required",
    ]
    assert not list((REPO / "pillar" / "evpn" / "sites").glob("*.sls"))


def test_node_answers_from_the_example_pillar(salt_call):
    assert _local(salt_call("--id", "pve-wro1", "--pillar-root", str(PILLAR), "evpn.node"))["site"] == "wro"


@pytest.fixture
def broken_pillar(tmp_path):
    """The example pillar with a typo, a duplicate address and a gateway outside its subnet."""
    root = tmp_path / "broken-pillar"
    shutil.copytree(PILLAR, root)
    wro = root / "evpn" / "sites" / "wro.sls"
    wro.write_text(
        wro.read_text()
        .replace("address: 10.2.0.1", "address: 10.1.0.1")
        .replace("gateway: 10.2.1.1", "gateway: 10.9.1.1")
        .replace("endpoint:", "endpiont:")
    )
    return root


def test_validate_returns_every_error_with_its_key_path(salt_call, broken_pillar):
    proc = salt_call("--id", "pve-roz1", "--pillar-root", str(broken_pillar), "evpn.validate")
    assert proc.returncode == 1
    errors = _local(proc)["errors"]
    assert sorted(e.split(": ", 1)[0] for e in errors) == [
        "evpn:sites:wro:nodes:pve-wro1:address",
        "evpn:sites:wro:nodes:pve-wro1:endpiont",
        "evpn:sites:wro:nodes:pve-wro1:endpoint",
        "evpn:sites:wro:vnets:wro1:subnets:10.2.1.0/24:gateway",
    ]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("evpn:\n  sites:\n    wro: [unclosed\n", id="yaml"),
        pytest.param("{% set octet = %}\nevpn: {}\n", id="jinja"),
    ],
)
def test_a_site_file_that_does_not_render_is_an_error_naming_it(salt_call, tmp_path, text):
    """Salt leaves a file it cannot render out of the pillar: validate names it, rather than
    validating the federation without that site."""
    root = tmp_path / "pillar"
    shutil.copytree(PILLAR, root)
    (root / "evpn" / "sites" / "wro.sls").write_text(text)
    proc = salt_call("--id", "pve-roz1", "--pillar-root", str(root), "evpn.validate")
    assert proc.returncode == 1
    assert _local(proc)["errors"] == [
        "pillar file evpn/sites/wro.sls (SLS evpn.sites.wro): Rendering SLS 'evpn.sites.wro' failed. Please see "
        "master log for details. (the cause is in Salt's log; salt-run evpn.validate on a master shows it)"
    ]


def test_state_run_on_a_broken_pillar_fails_and_runs_nothing_else(salt_call, broken_pillar):
    proc = salt_call("--id", "pve-roz1", "--pillar-root", str(broken_pillar), "state.apply", "evpn")
    assert proc.returncode != 0
    states = _local(proc)
    assert [s["__id__"] for s in states.values()] == ["evpn-pillar-invalid"]
    assert "evpn:sites:wro:nodes:pve-wro1:endpiont: unknown key 'endpiont'" in next(iter(states.values()))["comment"]


def test_file_server_holds_the_state_tree_and_modules_only(salt_call):
    py_compile.compile(str(REPO / "_modules" / "evpn.py"))  # as an import without -B leaves it
    served = _local(salt_call("--id", "pve-roz1", "cp.list_master"))
    assert "_modules/evpn.py" in served
    assert "evpn/init.sls" in served
    sources = {
        os.path.relpath(os.path.join(top, name), REPO / "salt")
        for top, _, names in os.walk(REPO / "salt", followlinks=True)
        for name in names
        if not name.endswith(".pyc")
    }
    assert set(served) == sources


def test_every_custom_module_folder_is_linked_into_the_file_root():
    """Minions get _modules, _states, _beacons only through salt://, i.e. through these links.
    Runners and their outputters stay on the master (runner_dirs, module_dirs in etc/master)."""
    folders = [p for p in REPO.glob("_*") if p.is_dir() and p.name not in ("_runners", "_output")]
    assert folders, "no custom module folder"
    for folder in folders:
        link = REPO / "salt" / folder.name
        assert link.is_symlink() and link.resolve() == folder.resolve(), f"salt/{folder.name}"
