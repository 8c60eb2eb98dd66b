"""pvenode.missing: what a node lacks for the evpn states, each item saying how to fix it."""

import pytest
import salt.utils.path

import pvenode
from emulated_pve import emulated_pve_files


@pytest.fixture
def packages():
    """frr as dpkg knows it (installed version) and as apt offers it (candidate)."""
    return {"installed": "10.2.2-1+pve1", "candidate": ""}


@pytest.fixture
def configure_loader_modules(tmp_path, packages):
    options = emulated_pve_files(tmp_path, "9.1")
    return {
        pvenode: {
            "__opts__": options,
            "__salt__": {
                "pkg.version": lambda name: packages["installed"],
                "pkg.latest_version": lambda name, refresh: packages["candidate"],
            },
        }
    }


@pytest.fixture(autouse=True)
def pvesh(monkeypatch):
    """pvesh on PATH unless a test takes it away."""
    monkeypatch.setattr(salt.utils.path, "which", lambda name: f"/usr/bin/{name}" if name == "pvesh" else None)
    return monkeypatch


def test_a_fit_node_lacks_nothing():
    assert pvenode.missing() == []
    assert pvenode.release() == "9.1"


def test_without_pvesh_it_is_not_a_pve_node_and_that_is_all_it_says(pvesh):
    pvesh.setattr(salt.utils.path, "which", lambda name: None)
    assert pvenode.missing() == [
        "pvesh is not installed: this is not a Proxmox VE node. Install Proxmox VE 8.4 or 9.x on it, "
        "or take it out of evpn:sites:<site>:nodes"
    ]


@pytest.mark.parametrize(
    "release,fragment",
    [
        ("8.3", "Proxmox VE 8.3 is older than this tree supports (8.4 and 9.x): upgrade the node to 8.4"),
        ("7.4", "Proxmox VE 7.4 is older than this tree supports"),
        ("10.0", "Proxmox VE 10.0 is newer than this tree supports (8.4 and 9.x)"),
    ],
)
def test_a_release_outside_8_4_to_9_x_is_refused(tmp_path, release, fragment):
    emulated_pve_files(tmp_path, release)
    (problem,) = pvenode.missing()
    assert problem.startswith(fragment)


@pytest.mark.parametrize("release", ["8.4", "9.0", "9.1", "9.2"])
def test_every_supported_release_passes(tmp_path, release):
    emulated_pve_files(tmp_path, release)
    assert pvenode.missing() == []


def test_an_unreadable_version_file_is_named(tmp_path):
    (tmp_path / "pvecfg.pm").unlink()
    (problem,) = pvenode.missing()
    assert problem == (
        f"the Proxmox VE version cannot be read ({tmp_path / 'pvecfg.pm'}: No such file or directory): "
        "reinstall pve-manager"
    )


@pytest.mark.parametrize(
    "text,sourced",
    [
        ("auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n", True),
        ("source  /etc/network/interfaces.d/sdn\n", True),
        ("source /etc/network/interfaces.d/*.conf\n", False),
        ("# source /etc/network/interfaces.d/*\n", False),
        ("auto lo\niface lo inet loopback\n", False),
    ],
)
def test_interfaces_must_source_what_sdn_writes(tmp_path, text, sourced):
    (tmp_path / "interfaces").write_text(text)
    expected = (
        []
        if sourced
        else [
            f"{tmp_path / 'interfaces'} does not source /etc/network/interfaces.d/*, where Proxmox VE's SDN writes "
            "its vnets: add the line 'source /etc/network/interfaces.d/*' at its end"
        ]
    )
    assert pvenode.missing() == expected


def test_frr_not_installed_is_fine_while_apt_offers_it(packages):
    packages.update(installed="", candidate="10.2.2-1+pve1")
    assert pvenode.missing() == []
    packages.update(candidate="")
    (problem,) = pvenode.missing()
    assert problem.startswith("FRR is neither installed nor available from the apt sources")


def test_every_problem_at_once(tmp_path, packages):
    emulated_pve_files(tmp_path, "8.2")
    (tmp_path / "interfaces").write_text("auto lo\n")
    packages.update(installed="", candidate="")
    problems = pvenode.missing()
    assert [problem.split()[0] for problem in problems] == ["Proxmox", str(tmp_path / "interfaces"), "FRR"]
