"""Import arrows between the top-level packages point one way (the developers' guide):
policy → rewardmodel → annotate → runs → accounts → rlhf; the project package `arbiter` (settings, urls) imports the
apps. An AST scan of every module (imports inside functions too), no Django needed.

Run as a script to print the arrows: .venv/bin/python tests/test_import_arrows.py
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ("policy", "rewardmodel", "annotate", "runs", "accounts", "rlhf")
PACKAGES = (*ORDER, "arbiter")
# Arrows that point up today, each with the reason it is still there (issue 20's "rooms", left for a later pass):
# the apps import the shared web helpers that live in the project package (arbiter/options.py, streams.py), and
# accounts imports the permissions and roles that live in runs/ (runs/permissions.py, runs/roles.py).
KNOWN_UPWARD = {
    ("accounts", "runs"),
    ("annotate", "arbiter"),
    ("policy", "arbiter"),
    ("rewardmodel", "arbiter"),
    ("runs", "arbiter"),
}


def import_arrows() -> dict[tuple[str, str], set[str]]:
    """(importer package, imported package) -> the importing modules, for imports between different packages."""
    arrows: dict[tuple[str, str], set[str]] = defaultdict(set)
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    target = name.split(".")[0]
                    if target in PACKAGES and target != package:
                        arrows[(package, target)].add(module)
    return arrows


def points_down(source: str, target: str) -> bool:
    if source == "arbiter":
        return True  # the project imports the apps
    return target != "arbiter" and ORDER.index(source) < ORDER.index(target)


def test_every_import_arrow_points_down():
    upward = {arrow: sorted(modules) for arrow, modules in import_arrows().items() if not points_down(*arrow)}
    unexpected = {arrow: modules for arrow, modules in upward.items() if arrow not in KNOWN_UPWARD}
    assert not unexpected, f"imports against the order {' → '.join(ORDER)}: {unexpected}"


def test_the_known_upward_arrows_are_still_there():
    """When one goes, take it off KNOWN_UPWARD so it cannot come back."""
    arrows = import_arrows()
    assert not [arrow for arrow in KNOWN_UPWARD if arrow not in arrows]


if __name__ == "__main__":
    for (source, target), modules in sorted(import_arrows().items()):
        mark = "down" if points_down(source, target) else "UP (known)" if (source, target) in KNOWN_UPWARD else "UP"
        print(f"{source:12} → {target:12} {mark:11} {len(modules)} modules")
