import pytest
from saltfactories.utils.functional import Loaders

from checkout_config import checkout_config
from emulated_pve import emulator_path


@pytest.fixture(scope="module")
def minion_id():
    return "pve-roz1"


@pytest.fixture(scope="module")
def loaders(salt_factories, minion_id):
    """Salt's loaders for ``minion_id`` on the checkout's tree, with the emulator as its pvesh
    (pvesdn loads only where pvesh is on PATH)."""
    factory = salt_factories.salt_minion_daemon(minion_id, overrides=checkout_config("minion", id=minion_id))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", emulator_path())
        yield Loaders(factory.config.copy())


@pytest.fixture(autouse=True)
def cluster(tmp_path, monkeypatch, minion_id):
    """A fresh emulated cluster for this minion's site: PVESIM_ROOT, its log, node name."""
    root = tmp_path / "cluster"
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
