"""salt-call as a user runs it from the checkout, and inside lab nodes."""

import json
import pathlib
import subprocess
import sys
import uuid

from support.federation import REPO

SALT_BIN = pathlib.Path(sys.executable).parent


def salt_call(*args, cachedir, cwd=REPO):
    """
    Run ``salt-call`` the way a user does in the checkout root (through the Saltfile), with a
    cache of the test's own: the checkout's cache would carry file lists between runs. Salt
    puts ``cachedir`` under the ``root_dir`` of etc/minion, whatever it is.
    """
    return subprocess.run(
        [
            str(SALT_BIN / "salt-call"),
            "--log-level=quiet",
            "--out=json",
            f"--cachedir={cachedir}",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def salt_call_in(node, *args):
    """
    ``salt-call --local`` inside a lab node (lab/netns.py), from the checkout root so the
    Saltfile applies, with a cache of its own. Returns (the ``local`` part of its JSON output,
    its raw stdout).
    """
    proc = node.run(
        str(SALT_BIN / "salt-call"),
        "--local",
        f"--id={node.name}",
        f"--cachedir=/var/cache/salt/test-{node.name}-{uuid.uuid4().hex}",
        "--out=json",
        "--log-level=quiet",
        *args,
        check=False,
        cwd=REPO,
    )
    if not proc.stdout:
        raise AssertionError(f"salt-call in {node.name} printed nothing: {proc.stderr}")
    return json.loads(proc.stdout)["local"], proc.stdout
