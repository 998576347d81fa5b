"""Issue 15's measured curve: eval accuracy against labels, next pairs picked at random or by uncertainty. NOT in CI.

Simulated annotation on the HH development file: a fixed prompt-disjoint eval split (20 %, `split_by_group`, seed 0:
370 pairs); the other 1,479 pairs are the pool, their human labels hidden until "annotated". Each seed starts from the
same random seed set for both strategies (100 pairs); then, in rounds of 100, the next pairs are picked
- at random, or
- by the app's model-ordered assignment rule, `rlhf.active.hand_out` (annotate.services.candidate_orders runs the
  same rule on the database): HITs of `--hit-size` pairs, unscored first, then the smallest |r(y1) − r(y2)| under
  the head trained so far, an exploration share of each HIT's places (default 20 %) taking consecutive pool ids from
  one random start,
their labels are revealed, the head is retrained from scratch, and eval accuracy is recorded, up to the whole pool.

The reward model is a linear head on frozen MiniLM features (bench/simulate.py says why and how). Run:
    HF_HUB_OFFLINE=1 nice -n 19 .venv/bin/python bench/curve_active.py --seeds 10 --exploration 0.2,0
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from simulate import (  # noqa: E402  (this folder is on sys.path when run as a script)
    STUDENT,
    Standardizer,
    accuracy,
    first_reaching,
    load_data,
    machine,
    mean_sd,
    rewards,
    train_head,
)

from rlhf.active import hand_out  # noqa: E402


def run_curve(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    pool: list[int],
    evaluation: list[int],
    seed_set: list[int],
    round_size: int,
    exploration: float | None,
    seed: int,
    hit_size: int = 6,
) -> list[tuple[int, float]]:
    """(labels, eval accuracy) after the seed set and after every round; exploration None: random picks."""
    rng = random.Random(seed * 1000 + 1)
    labelled = list(seed_set)
    unlabelled = sorted(set(pool) - set(labelled))
    curve = []
    while True:
        head = train_head(chosen[labelled], rejected[labelled], STUDENT, seed)
        curve.append((len(labelled), accuracy(head, chosen[evaluation], rejected[evaluation], STUDENT)))
        if not unlabelled:
            return curve
        if exploration is None:
            picked = rng.sample(unlabelled, min(round_size, len(unlabelled)))
        else:
            # The pool is the batch (id = position in `pool`). The rule looks at |margin| only: the shown order is moot.
            margins = rewards(head, chosen[pool], STUDENT) - rewards(head, rejected[pool], STUDENT)
            uncertainty = margins.abs().tolist()
            position = {index: place for place, index in enumerate(pool)}
            left = [position[index] for index in unlabelled]
            picked = []
            while left and len(picked) < round_size:
                hit = hand_out(uncertainty, left, min(hit_size, round_size - len(picked)), exploration, rng)
                picked += [pool[place] for place in hit]
                taken_now = set(hit)
                left = [place for place in left if place not in taken_now]
        labelled.extend(picked)
        taken = set(picked)
        unlabelled = [i for i in unlabelled if i not in taken]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed-set", type=int, default=100, help="Random pairs labelled before the first round.")
    parser.add_argument("--round", type=int, default=100, help="Pairs labelled per round.")
    parser.add_argument("--exploration", default="0.2", help="Comma-separated exploration shares to run.")
    parser.add_argument("--hit-size", type=int, default=6, help="Pairs per HIT (Batch.samples_per_hit's default).")
    parser.add_argument("--json", type=Path, help="Write every curve and the summary here.")
    args = parser.parse_args()
    started = time.perf_counter()

    data = load_data()
    standardize = Standardizer(data)
    chosen, rejected = standardize(data.chosen), standardize(data.rejected)
    pool, evaluation = data.train, data.eval
    explorations = [float(v) for v in args.exploration.split(",")]
    strategies: dict[str, float | None] = {"random": None}
    strategies.update({f"uncertainty, {e:.0%} explore": e for e in explorations})

    full_pool = [
        accuracy(
            train_head(chosen[pool], rejected[pool], STUDENT, s), chosen[evaluation], rejected[evaluation], STUDENT
        )
        for s in range(args.seeds)
    ]
    full_accuracy = mean_sd(full_pool)[0]
    target = full_accuracy - 0.01
    print(f"pool {len(pool)} pairs, eval {len(evaluation)} pairs (prompt-disjoint); full pool: {full_accuracy:.4f}")

    curves: dict[str, list[list[tuple[int, float]]]] = {name: [] for name in strategies}
    for seed in range(args.seeds):
        seed_set = random.Random(seed).sample(pool, args.seed_set)
        for name, exploration in strategies.items():
            curves[name].append(
                run_curve(chosen, rejected, pool, evaluation, seed_set, args.round, exploration, seed, args.hit_size)
            )
            print(f"seed {seed} {name}: " + " ".join(f"{n}:{a:.3f}" for n, a in curves[name][-1]), flush=True)

    summary: dict = {"full_pool_accuracy": full_accuracy, "target": target, "strategies": {}}
    for name, runs in curves.items():
        labels = [n for n, _ in runs[0]]
        per_label = [[run[i][1] for run in runs] for i in range(len(labels))]
        stats = [(*mean_sd(v), min(v), max(v)) for v in per_label]
        means = [s[0] for s in stats]
        per_seed_reach = [first_reaching(labels, [a for _, a in run], target) for run in runs]
        summary["strategies"][name] = {
            "labels": labels,
            "mean": means,
            "sd": [s[1] for s in stats],
            "min": [s[2] for s in stats],
            "max": [s[3] for s in stats],
            "labels_to_target_mean_curve": first_reaching(labels, means, target),
            "labels_to_target_per_seed": per_seed_reach,
        }
    wall = time.perf_counter() - started
    summary.update(
        seeds=args.seeds,
        seed_set=args.seed_set,
        round=args.round,
        pool=len(pool),
        eval=len(evaluation),
        wall_seconds=round(wall, 1),
        machine=machine(),
    )

    print(f"\nfull-pool accuracy {full_accuracy:.1%} (mean of {args.seeds} head seeds); target = {target:.1%}")
    names = list(summary["strategies"])
    print("| labels | " + " | ".join(f"{n}: mean ± sd (min–max)" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for i, labels in enumerate(summary["strategies"]["random"]["labels"]):
        cells = []
        for name in names:
            s = summary["strategies"][name]
            cells.append(f"{s['mean'][i]:.1%} ± {s['sd'][i]:.1%} ({s['min'][i]:.1%}–{s['max'][i]:.1%})")
        print(f"| {labels} | " + " | ".join(cells) + " |")
    for name in names:
        s = summary["strategies"][name]
        print(f"{name}: mean curve reaches {target:.1%} at {s['labels_to_target_mean_curve']} labels; per seed: "
              f"{s['labels_to_target_per_seed']}")  # fmt: skip
    print(f"wall {wall:.0f} s; {json.dumps(summary['machine'])}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "curves": curves}, indent=1))


if __name__ == "__main__":
    main()
