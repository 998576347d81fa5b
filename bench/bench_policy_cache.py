"""How long the default policy path takes: the one-time GGUF conversion, then the cached call. NOT in CI.

tests/policy/test_policy_loading.py asserts the behaviour (the second call reads the cached folder and never loads
the GGUF); the time lives here. Run:
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_policy_cache.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy.reinforce.loading import default_policy_path  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        default_policy_path(folder)
        conversion = time.perf_counter() - started
        cached = []
        for _ in range(20):
            started = time.perf_counter()
            default_policy_path(folder)
            cached.append(time.perf_counter() - started)
    print(f"conversion {conversion:.1f} s; cached call median {statistics.median(cached) * 1e6:.0f} µs (20 calls)")


if __name__ == "__main__":
    main()
