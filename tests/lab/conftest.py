"""The default lab (`make lab`: lab/topology.yaml with the lab's default pillar), built once for
the lab tier's modules that share it, in a state folder and namespace prefix of its own; when
the session ends, `make lab-down` must leave nothing of it."""

import pytest

from federation_lab import Federation
from support.labrun import default_lab as evpnlab


@pytest.fixture(scope="session")
def built():
    try:
        up = evpnlab("up")
        assert up.returncode == 0, up.stdout + up.stderr
        yield evpnlab
    finally:
        evpnlab.down_leaves_nothing()


@pytest.fixture
def lab(built):
    """The lab as it is now (another test may have added a node or a site, or moved a site),
    every minion answering its master (a node behind a renumbered router reconnects within
    seconds)."""
    federation = Federation.load(built.state)
    federation.master.wait_for(federation.built_nodes(), timeout=60)
    return federation
