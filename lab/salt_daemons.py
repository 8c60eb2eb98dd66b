"""
A Salt master and minions as plain processes inside lab nodes (lab/netns.py), configured from
the checkout's etc/, each with its own root_dir under ``state_dir``. The master listens on a lab
address only; the lab records every process for its teardown. Salt puts its unix sockets under
root_dir, so ``state_dir`` must be a short path (AF_UNIX paths hold 107 characters).
"""

import json
import pathlib
import re
import subprocess
import sys
import threading
import time

import yaml

from checkout_config import checkout_config

SALT_BIN = pathlib.Path(sys.executable).parent
NO_MINIONS = "No minions matched the target. No command was sent, no jid was assigned.\n"


class SaltMaster:
    def __init__(self, node, address, state_dir, pillar_root=None):
        self.node = node
        self.address = address
        self.config_dir = pathlib.Path(state_dir) / "salt-master"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        config = checkout_config(
            "master",
            root_dir=str(self.config_dir),
            interface=address,
            user="root",
            auto_accept=True,  # lab only: every minion here is ours
            worker_threads=2,
            log_file=str(self.config_dir / "master.log"),
            log_level_logfile="info",
        )
        if pillar_root:
            config["pillar_roots"] = {"base": [str(pillar_root)]}
        (self.config_dir / "master").write_text(yaml.safe_dump(config))

    def start(self):
        self.node.spawn(
            str(SALT_BIN / "salt-master"),
            "-c",
            str(self.config_dir),
            "-l",
            "quiet",
            label="salt-master",
            log_path=self.config_dir / "master.out",
        )

    def salt(self, *args, timeout=60):
        """``salt`` on this master; its JSON output, keyed by minion id ({} when no minion
        matched: before keys are accepted, salt says so in a line before the JSON)."""
        proc = self.node.run(
            str(SALT_BIN / "salt"),
            "-c",
            str(self.config_dir),
            "--out=json",
            "--static",
            f"--timeout={timeout}",
            *args,
            check=False,
        )
        return json.loads(proc.stdout.removeprefix(NO_MINIONS) or "{}")

    def run(self, *args, timeout=300, out="json", progress=None):
        """``salt-run`` on this master; its JSON output parsed, or its text with another ``out``
        (None: the outputter the runner names, as a user sees it).
        ``progress`` gets each orchestration step as it starts and completes (from Salt's own
        "Running state" and "Completed state" log lines, which ``-l info`` shows). Past ``timeout``
        it fails with the end of every Salt log of the lab, to say what hung."""
        argv = [str(SALT_BIN / "salt-run"), "-c", str(self.config_dir), *([f"--out={out}"] if out else []), *args]
        if progress is not None:
            argv[1:1] = ["-l", "info"]
        with subprocess.Popen(
            self.node.command(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as proc:
            output = []
            readers = [
                threading.Thread(target=lambda: output.append(proc.stdout.read()), daemon=True),
                threading.Thread(target=_steps, args=(proc.stderr, progress or (lambda line: None)), daemon=True),
            ]
            for reader in readers:
                reader.start()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                logs = sorted(self.config_dir.parent.glob("salt-*/*.log"))
                tails = "".join(
                    f"\n--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]) for log in logs
                )
                raise RuntimeError(f"salt-run {' '.join(args)} did not finish within {timeout} s{tails}") from None
            for reader in readers:
                reader.join()
        stdout = output[0]
        return json.loads(stdout or "{}") if out == "json" else stdout

    def wait_for(self, minion_ids, timeout=120):
        """Until every minion answers test.ping (minion authentication takes 10-20 s here). A
        minion that has not (re)connected yet misses the publication: each round gives up on it
        after 1 s of find_job (the salt CLI would wait gather_job_timeout, 10 s) and asks again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                answers = self.run("salt.execute", "*", "test.ping", "timeout=3", "gather_job_timeout=1", timeout=60)
            except ValueError:  # not JSON: the master is not up yet
                answers = {}
            if {minion for minion, answer in answers.items() if answer is True} >= set(minion_ids):
                return
            time.sleep(1)
        raise RuntimeError(f"minions {sorted(minion_ids)} did not all answer within {timeout} s")


def start_minion(node, minion_id, master_address, state_dir, environ=None, options=None):
    """A minion inside ``node``; ``environ`` replaces its environment (e.g. the emulator's
    pvesh on PATH); ``options`` are added to its configuration."""
    config_dir = pathlib.Path(state_dir) / f"salt-minion-{minion_id}"
    config_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "id": minion_id,
        "master": master_address,
        "root_dir": str(config_dir),
        "user": "root",
        "acceptance_wait_time": 2,
        "log_file": str(config_dir / "minion.log"),
        "log_level_logfile": "info",
        # A node whose public address moves loses its connection to the master without a word:
        # notice it in seconds, not after the default five minutes.
        "tcp_keepalive_idle": 5,
        "tcp_keepalive_cnt": 2,
        "tcp_keepalive_intvl": 2,
        **(options or {}),
    }
    (config_dir / "minion").write_text(yaml.safe_dump(config))
    node.spawn(
        str(SALT_BIN / "salt-minion"),
        "-c",
        str(config_dir),
        "-l",
        "quiet",
        label=f"salt-minion {minion_id}",
        log_path=config_dir / "minion.out",
        env=environ,
    )
    return config_dir


def _steps(stream, progress):
    """Salt's log lines of states starting and completing, as "started <id>" and
    "completed <id> (<seconds> s)"."""
    for line in stream:
        running = re.search(r"Running state \[(.+?)\] at time", line)
        completed = re.search(r"Completed state \[(.+?)\] at time .* \(duration_in_ms=([0-9.]+)\)", line)
        if running:
            progress(f"started {running.group(1)}")
        elif completed:
            progress(f"completed {completed.group(1)} ({float(completed.group(2)) / 1000:.1f} s)")
