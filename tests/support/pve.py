"""Where the PVE API reference lives (shared/pve-api, beside the checkout) and the versions
the emulator supports. Tests that need it skip cleanly when it is absent."""

from emulated_pve import emulated_pve_environ
from support.federation import REPO

PVE_API = REPO.parent / "shared" / "pve-api"
PVE_VERSIONS = ("8.4", "9.1")


def emulated_pve_minion(salt_master, clusters_root, site, minion_id):
    """A minion factory whose pvesh is the emulator in its site's cluster (not started)."""
    factory = salt_master.salt_minion_daemon(minion_id)
    # A dict of its own: salt-factories hands every daemon the manager's shared environ.
    factory.environ = emulated_pve_environ(clusters_root, site, minion_id)
    return factory
