"""Where the PVE API reference lives (shared/pve-api, beside the checkout) and the versions
the emulator supports. Tests that need it skip cleanly when it is absent."""

from support.federation import REPO

PVE_API = REPO.parent / "shared" / "pve-api"
PVE_VERSIONS = ("8.4", "9.1")
