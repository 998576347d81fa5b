"""Input size and cost, before/after figures for docs/reliability.md.

1. Peak memory (tracemalloc) of importing a ~200 MB JSONL file whose line 2 is bad.
2. Time to render a 1 MB markdown response: the first view, then each rating click (a view of the same sample).

    DATABASE_URL=... ARBITER_VAR_DIR=$(mktemp -d) .venv/bin/python bench/bench_inputs.py [--mb 200]

Runs against a scratch database (`migrate` first); it writes one batch named bench-inputs and removes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from annotate.importers import ImportFileError, import_comparisons  # noqa: E402
from annotate.models import Batch, Item  # noqa: E402
from annotate.rendering import render_markdown, render_markdown_cached  # noqa: E402


def big_file(folder: str, megabytes: int) -> Path:
    path = Path(folder) / "big.jsonl"
    good = {"prompt": "Q", "response_1": "a", "response_2": "b"}
    with open(path, "w") as out:
        out.write(json.dumps(good) + "\n" + json.dumps({**good, "response_1": 3}) + "\n")
        line = json.dumps({**good, "response_2": "x" * 1000}) + "\n"
        out.write(line * (megabytes * 1_000_000 // len(line)))
    return path


def import_memory(megabytes: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = big_file(folder, megabytes)
        tracemalloc.start()
        started = time.perf_counter()
        try:
            import_comparisons(path, "bench-inputs")
        except ImportFileError as exc:
            error = str(exc)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"import of {path.stat().st_size / 1e6:.0f} MB, bad line 2: peak {peak / 1e6:.1f} MB traced, "
            f"{time.perf_counter() - started:.2f} s; {error}"
        )


def render_times() -> None:
    paragraph = "Some **bold** text, `code`, and a [link](https://example.org).\n\n"
    response = (paragraph * (1_000_000 // len(paragraph)))[:1_000_000]
    started = time.perf_counter()
    render_markdown(response)
    print(f"render_markdown of a 1 MB response: {time.perf_counter() - started:.2f} s (every click, before)")
    texts = ["Question?", "", response, "short answer"]
    batch = Batch.objects.create(name="bench-inputs")
    try:
        Item.objects.create(
            batch=batch,
            external_id="1",
            prompt=[{"role": "user", "content": "Q"}],
            response_1=response,
            response_2="short",
        )
        for label in ("first view", "rating click 1", "rating click 2"):
            started = time.perf_counter()
            render_markdown_cached(texts)
            print(f"{label}: {time.perf_counter() - started:.3f} s")
    finally:
        batch.delete()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    arguments = parser.parse_args()
    import_memory(arguments.mb)
    render_times()
