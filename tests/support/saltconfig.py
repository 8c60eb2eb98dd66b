"""salt-call as a user runs it from the checkout, and inside lab nodes."""

import json
import pathlib
import subprocess
import sys
import uuid

import yaml

from checkout_config import checkout_config
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


def salt_call_in(node, *args, options=None, env=None):
    """
    ``salt-call --local`` inside a lab node (lab/netns.py), from the checkout root so the
    Saltfile applies, with a cache of its own. ``options`` are minion options over those of
    etc/minion (written to a config folder of the node's own, with its root_dir there); ``env``
    the environment it runs in. Returns (the ``local`` part of its JSON output, its raw stdout).
    """
    config = []
    if options:
        folder = node.root / "salt-call"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "minion").write_text(yaml.safe_dump(checkout_config("minion", root_dir=str(folder), **options)))
        config = ["-c", str(folder)]
    proc = node.run(
        str(SALT_BIN / "salt-call"),
        *config,
        "--local",
        f"--id={node.name}",
        f"--cachedir=/var/cache/salt/test-{node.name}-{uuid.uuid4().hex}",
        "--out=json",
        "--log-level=quiet",
        *args,
        check=False,
        cwd=REPO,
        env=env,
    )
    if not proc.stdout:
        raise AssertionError(f"salt-call in {node.name} printed nothing: {proc.stderr}")
    return json.loads(proc.stdout)["local"], proc.stdout
