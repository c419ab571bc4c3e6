"""The report header's commit: the checkout's short hash, marked when files differ."""

from __future__ import annotations

import subprocess
from pathlib import Path

from streamfeat.bench.runner import code_commit


def _git(where: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_commit_is_the_head_and_dirty_when_a_tracked_file_changed(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = _git(tmp_path, "rev-parse", "--short=10", "HEAD")
    (tmp_path / "untracked.txt").write_text("not counted")
    assert code_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("two")
    assert code_commit(tmp_path) == head + "+dirty"


def test_outside_a_checkout_the_commit_is_unknown(tmp_path: Path) -> None:
    assert code_commit(tmp_path) == "unknown"
