"""
A federation in lab nodes, for the integration tests and the benchmarks: one node per minion,
wireguard-go in each, dnsmasq answering the endpoint names, a salt-master (with the checkout's
reactor) in the first node, a minion per node whose pvesh is the emulator (one cluster per
site), and a listener that logs every event of the master's bus. Master and minions run as plain processes inside the
nodes: salt-factories' daemons would need a link to the host's namespace, which lab safety
forbids. Everything is torn down on leaving, also when a test fails.
"""

import contextlib
import os
import pathlib
import shutil
import tempfile

from emulated_pve import emulated_pve_environ
from netns import Lab
from salt_daemons import SALT_BIN, SaltMaster, start_minion


def add_nodes(lab, state, nodes, master_address):
    """Lab nodes for ``nodes`` (as below), each with wireguard-go and a minion of the master at
    ``master_address`` whose pvesh is the emulator in its site's cluster (``state/clusters``)."""
    made = {minion_id: lab.node(minion_id, public) for minion_id, (_, public, _, _) in nodes.items()}
    clusters = state / "clusters"
    clusters.mkdir(exist_ok=True)
    for minion_id, node in made.items():
        node.start_wireguard("wg0")
        environ = emulated_pve_environ(clusters, nodes[minion_id][0], minion_id)
        start_minion(node, minion_id, master_address, state, environ=environ)
    return made


def start_federation(lab, state, nodes, pillar_root, guests=()):
    """
    In ``lab`` (entered), the federation of ``nodes``: {minion id: (site, public address,
    endpoint name, WireGuard address)}, as in the pillar at ``pillar_root``, with the master in
    the first node. ``guests``: ids of extra minions that are no nodes of the federation, run in
    the master's node. Salt's folders go under ``state``. Returns a dict: lab, master, nodes
    (lab nodes by minion id), clusters, events (the event log), state.
    """
    lab.start_dns({name: public for _, public, name, _ in nodes.values()})
    first_id = next(iter(nodes))
    master_address = nodes[first_id][1]
    made = add_nodes(lab, state, nodes, master_address)
    master = SaltMaster(made[first_id], master_address, state, pillar_root=pillar_root)
    master.start()
    for guest in guests:
        start_minion(made[first_id], guest, master_address, state)
    master.wait_for([*nodes, *guests])
    events = state / "events.log"
    made[first_id].spawn(
        str(SALT_BIN / "salt-run"),
        "-c",
        str(master.config_dir),
        "state.event",
        "pretty=False",
        label="event listener",
        log_path=events,
    )
    return {
        "lab": lab,
        "master": master,
        "nodes": made,
        "clusters": state / "clusters",
        "events": events,
        "state": state,
    }


@contextlib.contextmanager
def lab_federation(nodes, pillar_root, prefix, guests=()):
    """``start_federation`` in a lab of its own, torn down on leaving."""
    # Short: Salt's unix sockets live under it, and pytest's temporary paths are too long.
    state = pathlib.Path(tempfile.mkdtemp(prefix="evpn-"))
    try:
        with Lab(state / "lab", prefix=f"{prefix}{os.getpid() % 100000}-") as lab:
            yield start_federation(lab, state, nodes, pillar_root, guests)
    finally:
        shutil.rmtree(state)
