"""rlhf/ must stay importable by the Django-free trainers: no module of it may import Django."""

import subprocess
import sys


def test_rlhf_imports_without_django():
    code = (
        "import sys, rlhf.preferences, rlhf.prompts, rlhf.training, rlhf.devices, rlhf.active, rlhf.stats;"
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules), 'django was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
