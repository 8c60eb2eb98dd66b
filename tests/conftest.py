"""
Shared fixtures of every tier.

- unit (tests/unit): the modules imported directly, pure functions.
- functional (tests/functional): Salt loaders and ``salt-call`` masterless, no daemons.
- integration (tests/integration): a salt-master started from the project's own ``etc/master``
  and one salt-minion per node of the example pillar. Later tiers add minions with
  ``salt_master.salt_minion_daemon(...)`` and pillar with ``salt_master.pillar_tree``.
"""

import logging
import pathlib
import subprocess
import sys
import tempfile

import pytest
import yaml
from support.federation import REPO, example_federation

SALT_BIN = pathlib.Path(sys.executable).parent


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in item.path.relative_to(REPO / "tests").parts[:1]:
            item.add_marker(pytest.mark.integration)


def project_master_config():
    """etc/master with its checkout-relative paths made absolute (the daemons' cwd differs)."""
    config = yaml.safe_load((REPO / "etc" / "master").read_text())
    config.pop("root_dir")  # salt-factories gives each daemon its own
    for roots in ("file_roots", "pillar_roots"):
        config[roots] = {
            env: [str(REPO / path) for path in paths] for env, paths in config[roots].items()
        }
    config["runner_dirs"] = [str(REPO / path) for path in config["runner_dirs"]]
    return config


def salt_call(*args, cwd=REPO):
    """Run ``salt-call`` the way a user does in the checkout root (through the Saltfile)."""
    return subprocess.run(
        [str(SALT_BIN / "salt-call"), "--log-level=quiet", "--out=json", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="session")
def federation():
    """The example federation of the checkout's pillar."""
    return example_federation()


@pytest.fixture(scope="session")
def salt_factories_config():
    # A short root keeps the daemons' unix socket paths under the AF_UNIX limit.
    with tempfile.TemporaryDirectory(prefix="evpn-sf-") as root:
        yield {"root_dir": pathlib.Path(root), "start_timeout": 120}


@pytest.fixture(scope="session")
def salt_master(salt_factories):
    factory = salt_factories.salt_master_daemon(
        "evpn-master", overrides=project_master_config()
    )
    with factory.started():
        yield factory


@pytest.fixture(scope="session")
def example_minions(salt_master, federation):
    """One running minion per node of the example pillar, custom modules synced: {id: factory}."""
    node_ids = [node for site in federation["sites"].values() for node in site["nodes"]]
    factories = {node: salt_master.salt_minion_daemon(node) for node in node_ids}
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


@pytest.fixture(scope="session", autouse=True)
def _quiet_daemon_shutdown():
    """Salt reconfigures the root logger; at daemon shutdown its handlers write to closed
    streams. Put the root logger back so teardown noise stays out of the summary."""
    yield
    logging.root.handlers.clear()
    logging.root.setLevel(logging.WARNING)
