"""The README's "Where things are" table is true: every file it names exists and every name is defined there.

Plain file reading and `ast`: no Django, no database. A row names files (backticked paths) and names (backticked
identifiers, `Class.method` for a method); each name must be defined at the top level of one of the row's Python files
(a function, a class, or an assignment), a method inside its class.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)?")


def map_rows() -> list[tuple[str, list[str], list[str]]]:
    """(what, paths, names) of each row of the table under "## Where things are"."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("## Where things are")
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if not line.startswith("|") or line.startswith(("|---", "| what ")):
            continue
        what, *cells = [cell.strip() for cell in line.strip("|").split("|")]
        tokens = [token for cell in cells for token in re.findall(r"`([^`]+)`", cell)]
        paths = [token for token in tokens if "/" in token or token.endswith(".py")]
        names = [token for token in tokens if token not in paths and NAME.fullmatch(token)]
        rows.append((what, paths, names))
    return rows


@cache
def defined_in(path: Path) -> frozenset[str]:
    """Top-level functions, classes and assigned names of a module, and `Class.method` for each method."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}.{member.name}")
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return frozenset(names)


ROWS = map_rows()


def test_the_map_has_rows():
    assert len(ROWS) >= 20
    assert all(paths for _, paths, _ in ROWS)


@pytest.mark.parametrize(("what", "paths", "names"), ROWS, ids=[what for what, _, _ in ROWS])
def test_every_file_and_name_in_the_map_exists(what, paths, names):
    missing_files = [path for path in paths if not (ROOT / path).exists()]
    assert not missing_files, f"{what!r}: no such file {missing_files}"
    modules = [ROOT / path for path in paths if path.endswith(".py")]
    undefined = [name for name in names if not any(name in defined_in(module) for module in modules)]
    assert not undefined, f"{what!r}: not defined in {paths}: {undefined}"
