"""
Every shell command README.md and docs/*.md show is run by a test as shown
(tests/integration/test_docs.py), run by a test in another form (its file named, and checked to
hold it), or listed as needing real PVE hardware: a documented command cannot drift from the code
unnoticed. make targets are also expanded with ``make -n``.
"""

import re
import shlex
import subprocess

import pytest

from support.docs import DOCUMENTS, NEEDS_REAL_PVE, NOT_COMMANDS, RUN_ELSEWHERE, RUN_HERE, commands, fences
from support.federation import REPO

KNOWN = [set(RUN_HERE), set(RUN_ELSEWHERE), NEEDS_REAL_PVE, NOT_COMMANDS]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_code_block_says_what_it_holds(document):
    """A block without an info string could be shell that nothing checks."""
    assert [info for info, _ in fences(document.read_text()) if not info] == []


def test_every_shown_command_is_accounted_for():
    shown = commands()
    unknown = {command: where for command, where in shown.items() if not any(command in group for group in KNOWN)}
    assert unknown == {}, "add each to tests/support/docs.py: run it in a test, or say it needs real PVE"
    twice = [command for command in shown if sum(command in group for group in KNOWN) > 1]
    assert twice == []


def test_nothing_is_accounted_for_that_the_docs_no_longer_show():
    stale = set().union(*KNOWN) - set(commands())
    assert stale == set()


@pytest.mark.parametrize("command", sorted(RUN_ELSEWHERE))
def test_the_file_that_runs_it_holds_it(command):
    path, fragment = RUN_ELSEWHERE[command]
    assert fragment in (REPO / path).read_text(), f"{path} no longer holds {fragment!r}"


@pytest.mark.parametrize("command", sorted(c for c in commands() if re.search(r"(^|&& )make ", c)))
def test_make_targets_exist_as_shown(command):
    argv = shlex.split(command.split("&& ")[-1])
    dry = subprocess.run([*argv[:1], "-n", *argv[1:]], cwd=REPO, capture_output=True, text=True, check=False)
    assert dry.returncode == 0, dry.stderr
