import shutil

import pytest
from saltfactories.utils.functional import Loaders

from checkout_config import checkout_config
from emulated_pve import emulated_pve_files, emulator_path
from support.federation import PILLAR


@pytest.fixture(scope="module")
def minion_id():
    return "pve-roz1"


@pytest.fixture(scope="module")
def pve_node():
    """Whether the module's minion stands for a Proxmox VE node: the emulator as its pvesh."""
    return True


@pytest.fixture(scope="module")
def cluster_root(tmp_path_factory):
    """The emulated cluster's folder (PVESIM_ROOT) of this module's minion, which its
    pve_config_dir names: emptied before each test."""
    return tmp_path_factory.mktemp("cluster")


@pytest.fixture(scope="module")
def loaders(salt_factories, minion_id, cluster_root, tmp_path_factory, pve_node):
    """Salt's loaders for ``minion_id`` on the checkout's tree and the lab's example pillar, with
    the emulator as its pvesh (pvesdn loads only where pvesh is on PATH), the emulated cluster
    as its /etc/pve, and PVE's version and interfaces files (emulated_pve_files)."""
    config = checkout_config(
        "minion",
        id=minion_id,
        pve_config_dir=str(cluster_root),
        pillar_roots={"base": [str(PILLAR)]},
        **emulated_pve_files(tmp_path_factory.mktemp("pve-host"), "9.1"),
    )
    factory = salt_factories.salt_minion_daemon(minion_id, overrides=config)
    with pytest.MonkeyPatch.context() as patch:
        if pve_node:
            patch.setenv("PATH", emulator_path())
        yield Loaders(factory.config.copy())


@pytest.fixture(autouse=True)
def cluster(tmp_path, monkeypatch, minion_id, cluster_root, loaders):
    """A fresh emulated cluster for this minion's site: PVESIM_ROOT, its log, node name; every
    node the pillar gives the site is a member, as PVE lists them."""
    root = cluster_root
    shutil.rmtree(root)
    root.mkdir()
    for site in loaders.pillar.get("evpn", {}).get("sites", {}).values():
        if minion_id in site.get("nodes", {}):
            for node in site["nodes"]:
                (root / "nodes" / node).mkdir(parents=True)
    monkeypatch.setenv("PVESIM_ROOT", str(root))
    monkeypatch.setenv("PVESIM_NODE", minion_id.split(".")[0])
    monkeypatch.setenv("PVESIM_LOG", str(tmp_path / "pvesh.log"))
    monkeypatch.delenv("PVESIM_VERSION", raising=False)
    return root


@pytest.fixture(autouse=True)
def reset_loaders_state(loaders):
    try:
        yield
    finally:
        loaders.reset_state()
