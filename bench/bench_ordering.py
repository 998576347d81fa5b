"""Scoring throughput and memory of model-ordered assignment (rewardmodel.ordering). NOT part of CI.

Builds a fresh PostgreSQL database (default arbiter_bench_ordering: dropped and re-created), fills one batch with
--items pairwise items via SQL generate_series (an hh-rlhf-like prompt and two responses of about --chars
characters), then scores every open item through the product's `score_items` (the task's body: chunks streamed
with .iterator(), ItemScore rows and Item.uncertainty written per chunk). Reports items/s and the process RSS after
the first chunk and at the end (bounded memory: the two should stay close however many items there are).

    .venv/bin/python bench/bench_ordering.py --model tiny --items 100000
    .venv/bin/python bench/bench_ordering.py --model minilm --items 1000
`tiny` is the tests' 1-layer random BERT (tests/rewardmodel/helpers.py); `minilm` is the default backbone
(MiniLM-L6) with a fresh one-output head, saved and loaded as a trained reward model would be (same cost).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def recreate_database(server_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')


def fill(items: int, chars: int) -> int:
    from django.db import connection

    from annotate.models import Batch

    batch = Batch.objects.create(name="ordering-bench", assignment_order="uncertainty")
    words = "the assistant says that it can help you with this question about cooking and travel "
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO annotate_item (batch_id, external_id, prompt, prompt_input, response_1, response_2,
                                       more_responses, source, created_at, judgment_count, is_open)
            SELECT %s, n::text,
                   jsonb_build_array(jsonb_build_object('role', 'user',
                       'content', 'How do I make a good dinner for ' || n || ' people?')),
                   '', left(repeat(%s || n, 40), %s), left(repeat(n || %s, 40), %s), '[]'::jsonb, '{}'::jsonb, now(),
                   0, true
            FROM generate_series(1, %s) AS n
            """,
            [batch.pk, words, chars, words, chars, items],
        )
    return batch.pk


def build_model(kind: str, folder: Path) -> str:
    if kind == "tiny":
        from tests.rewardmodel.helpers import build_tiny_backbone

        return build_tiny_backbone(folder)
    from rewardmodel.train.backbone import load_reward_backbone, load_tokenizer
    from rewardmodel.train.config import DEFAULT_BACKBONE

    tokenizer = load_tokenizer(DEFAULT_BACKBONE)
    load_reward_backbone(DEFAULT_BACKBONE, tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--chars", type=int, default=400, help="characters per response")
    parser.add_argument("--model", choices=("tiny", "minilm"), default="tiny")
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="arbiter_bench_ordering")
    args = parser.parse_args()

    recreate_database(args.server, args.database)
    os.environ["DATABASE_URL"] = f"{args.server}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arbiter.settings")
    os.environ.setdefault("ARBITER_VAR_DIR", tempfile.mkdtemp(prefix="bench_ordering_"))
    os.environ.setdefault("DEBUG", "true")
    import django

    django.setup()
    import torch
    from django.core.management import call_command

    from annotate.models import Batch, Item
    from rewardmodel.models import RewardModelRun
    from rewardmodel.ordering import open_items, score_items
    from rewardmodel.train import load_reward_model
    from runs.models import RunStatus

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    batch = Batch.objects.get(pk=fill(args.items, args.chars))
    print(f"filled {args.items} items in {time.perf_counter() - started:.1f} s")
    scorer = load_reward_model(build_model(args.model, Path(tempfile.mkdtemp(prefix="bench_model_"))), device="cpu")
    run = RewardModelRun.objects.create(status=RunStatus.SUCCEEDED, artifact_path="bench")
    run.batches.set([batch])
    rss: list[float] = []
    started = time.perf_counter()
    scored = score_items(
        run,
        open_items(batch),
        set_uncertainty=True,
        chunk_size=args.chunk,
        scorer=scorer,
        on_chunk=lambda done: rss.append(rss_mb()),
    )
    seconds = time.perf_counter() - started
    print(
        f"model={args.model} items={scored} chunk={args.chunk} seconds={seconds:.1f} items/s={scored / seconds:.1f} "
        f"rss_after_first_chunk_mb={rss[0]:.0f} rss_end_mb={rss[-1]:.0f} rss_max_mb={max(rss):.0f} "
        f"unscored_left={Item.objects.filter(batch=batch, uncertainty__isnull=True).count()} "
        f"torch_threads={torch.get_num_threads()} cpu={platform.processor() or platform.machine()}"
    )


if __name__ == "__main__":
    main()
