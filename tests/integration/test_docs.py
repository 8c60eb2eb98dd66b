"""
The documented commands that can run here, run as README.md and docs/*.md show them: against the
salt-master of etc/master and the example minions (emulated PVE nodes on the test host), or
masterless from the checkout. Each must give the exit code tests/support/docs.py expects.
"""

import shlex
import shutil
import uuid

import pytest
import yaml

from support.docs import PLACEHOLDERS, RUN_HERE
from support.federation import REPO
from support.saltconfig import salt_call


@pytest.fixture(scope="module")
def clis(salt_master, synced_example_minions, example_minions):
    """The CLIs; ``salt`` keeps the example minions' ids: the session's master may know minions
    that other tests started and stopped, which '*' would wait for."""
    return {
        "salt": salt_master.salt_cli(timeout=120),
        "salt-run": salt_master.salt_run_cli(timeout=120),
        "salt-key": salt_master.salt_key_cli(timeout=60),
        "salt-call": example_minions["pve-roz1"].salt_call_cli(timeout=120),
        "nodes": ",".join(example_minions),
    }


def run(clis, command):
    program, *args = [PLACEHOLDERS.get(word, word) for word in shlex.split(command)]
    if program == "salt" and args[0] == "*":  # the federation's nodes, as a list
        return clis["salt"].run("-L", *args[1:], minion_tgt=clis["nodes"]).returncode
    if program == "salt":
        return clis["salt"].run(*args[1:], minion_tgt=args[0]).returncode
    if program == "salt-call" and "--local" not in args:  # masterless from the checkout root
        cachedir = f"/var/cache/salt/test-docs-{uuid.uuid4().hex}"
        try:
            return salt_call(*args, cachedir=cachedir).returncode
        finally:  # Salt puts it under etc/minion's root_dir
            root_dir = REPO / yaml.safe_load((REPO / "etc" / "minion").read_text())["root_dir"]
            shutil.rmtree(root_dir / cachedir.lstrip("/"), ignore_errors=True)
    return clis[program].run(*args).returncode


@pytest.mark.parametrize("command", sorted(RUN_HERE))
def test_the_documented_command_runs(clis, command):
    assert run(clis, command) == RUN_HERE[command]
