"""Peak memory of the import path for hostile and large files, old code against new, side by side. NOT CI.

Each measurement runs in a fresh process (peak RSS from getrusage; growth: over the peak before reading):
the check pass of an import (annotate.importers.open_source + iter_comparisons: gunzip, size limit, parsing,
validation; what ran out of memory in the issue), with the importer module of the current tree ("new") or of a
git revision ("old", default 59423c6, before issue 19 items 10-11), the same Django settings either way.

- "bomb": a gzip of N MiB of newlines (the issue's 300 KB gzip of 300 MB) followed by one record;
- "array": a JSON array of N MiB of pair records, pretty-printed (as a data set's JSON file is).

    nice -n 19 .venv/bin/python bench/bench_import_memory.py [--old-rev REV] [--bomb-mib 8,300] [--array-mib 50]

"old" runs a case only up to --old-max-mib (default 64): the old importer keeps every blank line, about 42 bytes
per newline, so 300 MiB of newlines would need ~13 GB.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAIR = {"prompt": "What colour is the sky on a clear day?", "response_1": "Blue, mostly.", "response_2": "Green."}


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(impl: str, path: str, old_rev: str) -> dict:
    """In this (fresh) process: read the file through the import's check pass; peak RSS over the baseline."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ["IMPORT_MAX_ROWS"] = "10000000"
    import django

    django.setup()
    if impl == "old":
        import importlib.util

        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{old_rev}:annotate/importers.py"], capture_output=True, check=True
        ).stdout
        module_path = Path(tempfile.mkdtemp()) / "old_importers.py"
        module_path.write_bytes(source)
        spec = importlib.util.spec_from_file_location("old_importers", module_path)
        importers = importlib.util.module_from_spec(spec)
        sys.modules["old_importers"] = importers  # its dataclasses look their module up
        spec.loader.exec_module(importers)
    else:
        from annotate import importers
    import gc

    gc.collect()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux: the peak so far (Django loaded)
    began = time.perf_counter()
    records, error = 0, ""
    try:
        with importers.open_source(path) as stream:
            for _fmt, _comparison in importers.iter_comparisons(stream):
                records += 1
    except importers.ImportFileError as exc:
        error = str(exc)[:120]
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "records": records,
        "error": error,
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak / 1024, 1),
        "growth_mib": round((peak - base) / 1024, 1),
        "rss_after_mib": round(rss_kib() / 1024, 1),
    }


def write_bomb(folder: Path, mib: int) -> Path:
    path = folder / f"bomb-{mib}.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=9) as out:
        block = b"\n" * (1 << 20)
        for _ in range(mib):
            out.write(block)
        out.write(json.dumps(PAIR).encode() + b"\n")
    return path


def write_array(folder: Path, mib: int) -> Path:
    path = folder / f"array-{mib}.json"
    with open(path, "w") as out:
        out.write("[\n")
        n, size = 0, 0
        while size < mib << 20:
            text = ("" if n == 0 else ",\n") + json.dumps({**PAIR, "id": f"r{n}"}, indent=1)
            out.write(text)
            size += len(text)
            n += 1
        out.write("\n]\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-rev", default="59423c6")
    parser.add_argument("--bomb-mib", default="8,300")
    parser.add_argument("--array-mib", default="50")
    parser.add_argument("--old-max-mib", type=int, default=64)
    parser.add_argument("--measure", nargs=3, metavar=("IMPL", "PATH", "REV"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
    cases = [("bomb", int(m), write_bomb) for m in args.bomb_mib.split(",") if m] + [
        ("array", int(m), write_array) for m in args.array_mib.split(",") if m
    ]
    for case, mib, write in cases:
        path = write(folder, mib)
        for impl in ("old", "new"):
            if impl == "old" and mib > args.old_max_mib:
                print(json.dumps({"case": case, "mib": mib, "impl": impl, "skipped": "over --old-max-mib"}))
                continue
            out = subprocess.run(
                [sys.executable, __file__, "--measure", impl, str(path), args.old_rev],
                capture_output=True,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            result = (
                json.loads(out.stdout.strip().splitlines()[-1])
                if out.returncode == 0
                else {"failed": out.stderr[-300:]}
            )
            print(
                json.dumps({"case": case, "mib": mib, "file_bytes": path.stat().st_size, "impl": impl, **result}),
                flush=True,
            )
        path.unlink()


if __name__ == "__main__":
    main()
