"""The house rules of ARCHITECTURE.md: core imports no wing; wings never import the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT

WINGS = ("connectors", "flink_jobs", "feature_api", "batch", "serving")


def _imports(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (PROJECT_ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                found.add((str(path.relative_to(PROJECT_ROOT)), name.split(".")[0]))
    return found


def test_core_imports_no_wing_and_not_the_cli() -> None:
    bad = {(f, m) for f, m in _imports("core") if m in (*WINGS, "streamfeat")}
    assert bad == set()


@pytest.mark.parametrize("wing", WINGS)
def test_wings_do_not_import_the_cli(wing: str) -> None:
    bad = {(f, m) for f, m in _imports(wing) if m == "streamfeat"}
    assert bad == set()


def test_every_top_level_folder_exists() -> None:
    for folder in (*WINGS, "core", "streamfeat", "deploy", "tests"):
        assert Path(PROJECT_ROOT / folder).is_dir(), folder
