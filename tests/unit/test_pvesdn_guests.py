"""pvesdn.guests: which guests a vnet still has, from the guests' configurations as PVE keeps them
(nodes/<node>/qemu-server/<vmid>.conf, nodes/<node>/lxc/<vmid>.conf)."""

import os

import pytest

import pvesdn


@pytest.fixture
def cluster(tmp_path):
    return tmp_path


@pytest.fixture
def configure_loader_modules(cluster):
    def list_config(path):
        folder = cluster / path
        return sorted(os.listdir(folder)) if folder.is_dir() else []

    salt = {"pvesh.list_config": list_config, "pvesh.read_config": lambda path: (cluster / path).read_text()}
    return {pvesdn: {"__salt__": salt}}


def guest(cluster, node, kind, vmid, text):
    path = cluster / "nodes" / node / kind / f"{vmid}.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_guests_on_a_vnet_are_named_with_their_node(cluster):
    guest(cluster, "pve-roz1", "qemu-server", 100, "name: web\nnet0: virtio=BC:24:11:00:00:01,bridge=roz1,firewall=1\n")
    guest(cluster, "pve-roz2", "lxc", 200, "hostname: dns\nnet0: name=eth0,bridge=roz1,hwaddr=BC:24:11:00:00:02\n")
    guest(cluster, "pve-roz2", "qemu-server", 101, "net0: virtio=BC:24:11:00:00:03,bridge=vmbr0\n")
    assert pvesdn.guests(["roz1", "other"]) == {"roz1": ["100 (web) on pve-roz1", "200 (dns) on pve-roz2"]}


def test_a_pending_device_counts_a_snapshot_does_not(cluster):
    guest(
        cluster,
        "pve-roz1",
        "qemu-server",
        102,
        "net0: virtio=BC:24:11:00:00:04,bridge=vmbr0\n\n[PENDING]\nnet1: virtio=BC:24:11:00:00:05,bridge=roz1\n",
    )
    guest(
        cluster,
        "pve-roz1",
        "qemu-server",
        103,
        "net0: virtio=BC:24:11:00:00:06,bridge=vmbr0\n\n[before-move]\nnet0: virtio=BC:24:11:00:00:06,bridge=roz1\n",
    )
    assert pvesdn.guests(["roz1"]) == {"roz1": ["102 on pve-roz1"]}
