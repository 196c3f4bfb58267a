"""One import root: the built package holds only `mahsm`, and the base layer stays below.

The top-level folders workflows/, activities/, workers/, api/ are installed as
mahsm.workflows, ... through the symlinks mahsm/<name> -> ../<name> (docs/decisions.md).
"""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENGINE = ("workflows", "activities", "workers", "api")


def test_built_package_has_one_import_root(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "-q",
            "egg_info",
            "--egg-base",
            str(tmp_path),
            "build_py",
            "--build-lib",
            str(lib),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    assert sorted(p.name for p in lib.iterdir()) == ["mahsm"]
    for module in (
        "workflows/task_workflow.py",
        "activities/tools/sql.py",
        "workers/__main__.py",
        "api/main.py",
        "api/routes/tasks.py",
    ):
        built = lib / "mahsm" / module
        assert built.is_file() and not built.is_symlink(), module


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_base_layer_does_not_import_the_engine() -> None:
    """mahsm's own modules (contracts, client, cli, ...) never import the mapped layers."""
    upward = []
    for path in sorted((REPO / "mahsm").rglob("*.py")):
        relative = path.relative_to(REPO / "mahsm")
        if relative.parts[0] in ENGINE:
            continue  # the mapped folders themselves
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] in ENGINE or (parts[0] == "mahsm" and parts[1:2] and parts[1] in ENGINE):
                upward.append(f"mahsm/{relative.as_posix()} imports {name}")
    assert upward == []
