"""
Shared fixtures of every tier.

- unit (tests/unit): the modules imported directly, pure functions.
- functional (tests/functional): Salt loaders and ``salt-call`` masterless, no daemons.
- integration (tests/integration): a salt-master started from the project's own ``etc/master``
  (serving the lab's example pillar, lab/pillar) and one salt-minion per node of it.
- lab (tests/lab): ``make lab`` end to end. Later tiers add minions with
  ``salt_master.salt_minion_daemon(...)`` and pillar with ``salt_master.pillar_tree``.
"""

import os
import pathlib
import shutil
import tempfile

import pytest
import salt._logging.impl as salt_logging

import host
from checkout_config import checkout_config
from support.federation import PILLAR, REPO, example_federation
from support.pve import PVE_VERSIONS, emulated_pve_minion


def _host_snapshot():
    wireguard = pathlib.Path("/etc/wireguard")
    return {
        "/etc/wireguard": sorted(os.listdir(wireguard)) if wireguard.is_dir() else [],
        "/etc/sysctl.d": sorted(os.listdir("/etc/sysctl.d")),
        "net.ipv4.ip_forward": pathlib.Path("/proc/sys/net/ipv4/ip_forward").read_text(),
        "links": sorted(os.listdir("/sys/class/net")),
    }


@pytest.fixture(scope="session", autouse=True)
def host_left_alone():
    """The tests converge lab nodes, emulated clusters and temporary folders, never the machine
    they run on: its WireGuard keys, sysctls and network links are the same afterwards."""
    before = _host_snapshot()
    yield
    assert _host_snapshot() == before, "the tests changed this host"


def pytest_collection_modifyitems(items):
    for item in items:
        tier = item.path.relative_to(REPO / "tests").parts[0]
        if tier in ("integration", "lab"):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def lab_host():
    """Tests that build lab nodes need root and the lab's packages: without them they fail, saying
    what is missing (``make test`` installs them), rather than skip."""
    problem = host.missing()
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture(params=PVE_VERSIONS)
def pve_version(request):
    """Each PVE version the emulator supports."""
    return request.param


@pytest.fixture
def pve_cluster(tmp_path, pve_version):
    """A fresh emulated cluster (PVESIM_ROOT) as the library: node pve1 of that version."""
    from pvesim.api import Api

    return Api(tmp_path / "cluster", "pve1", pve_version)


@pytest.fixture(scope="session")
def federation():
    """The example federation of the lab's pillar (lab/pillar)."""
    return example_federation()


@pytest.fixture(scope="session")
def salt_factories_config():
    # A short root keeps the daemons' unix socket paths under the AF_UNIX limit.
    with tempfile.TemporaryDirectory(prefix="evpn-sf-") as root:
        yield {"root_dir": pathlib.Path(root), "start_timeout": 120}


@pytest.fixture(scope="session")
def salt_master(salt_factories):
    """The checkout's etc/master serving the lab's example pillar (the checkout's pillar/ has no site)."""
    config = checkout_config("master", pillar_roots={"base": [str(PILLAR)]})
    factory = salt_factories.salt_master_daemon("evpn-master", overrides=config)
    with factory.started():
        yield factory


@pytest.fixture(scope="session")
def clusters_root(tmp_path_factory):
    """One emulated PVE cluster (PVESIM_ROOT) per site: <clusters_root>/<site>."""
    return tmp_path_factory.mktemp("clusters")


@pytest.fixture
def fresh_clusters(clusters_root, pve_version, federation):
    """Every site's cluster emptied and set to ``pve_version``, every node the pillar gives the
    site a member, as PVE lists them: {site: PVESIM_ROOT}."""
    for root in clusters_root.iterdir():
        shutil.rmtree(root)
        root.mkdir()
        (root / "pvesim-version").write_text(pve_version)
        for node in federation["sites"].get(root.name, {}).get("nodes", {}):
            (root / "nodes" / node).mkdir(parents=True)
    return {root.name: root for root in clusters_root.iterdir()}


@pytest.fixture(scope="session")
def example_minions(salt_master, federation, clusters_root):
    """One running minion per node of the example pillar, its pvesh the emulator: {id: factory}."""
    factories = {
        node: emulated_pve_minion(salt_master, clusters_root, site, node)
        for site, site_conf in federation["sites"].items()
        for node in site_conf["nodes"]
    }
    started = []
    try:
        for factory in factories.values():
            factory.start()
            started.append(factory)
        yield factories
    finally:
        for factory in started:
            factory.terminate()


@pytest.fixture(scope="session")
def salt_cli(salt_master):
    return salt_master.salt_cli(timeout=120)


@pytest.fixture(scope="session")
def synced_example_minions(example_minions, salt_cli):
    """The example minions after ``saltutil.sync_all``: {id: what the sync delivered}."""
    synced = {}
    for minion_id in example_minions:
        ret = salt_cli.run("saltutil.sync_all", minion_tgt=minion_id)
        assert ret.returncode == 0, ret.stderr
        synced[minion_id] = ret.data
    return synced


@pytest.fixture(scope="session", autouse=True)
def _flush_salt_deferred_logging():
    """Salt queues early log records in a temporary handler that it replays at interpreter
    exit, into pytest's capture stream that is closed by then ("Logging error ... I/O
    operation on closed file"). Hand them to the real handlers while the session still runs."""
    yield
    salt_logging.shutdown_temp_handler()
