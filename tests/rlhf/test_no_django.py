"""The training code stays free of Django: every module under rlhf/, rewardmodel/train/ and policy/reinforce/ imports
without it (the trainers take plain data and callbacks; the Celery tasks are thin adapters)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DJANGO_FREE = ("rlhf", "rewardmodel/train", "policy/reinforce")


def django_free_modules() -> list[str]:
    return sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for folder in DJANGO_FREE
        for path in (ROOT / folder).glob("*.py")
    )


def test_the_guard_sees_every_module():
    modules = django_free_modules()
    assert {"rlhf.active", "rlhf.agreement", "rewardmodel.train.trainer", "policy.reinforce.sft"} <= set(modules)
    assert len(modules) >= 30


def test_the_training_code_imports_without_django():
    modules = django_free_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    leaked = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "    assert not leaked, f'{name} imported django'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
