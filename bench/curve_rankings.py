"""Issue 12's figure: reward-model accuracy against annotator actions, K = 4 rankings versus pairs. NOT in CI.

"Truth" is a fixed scorer: a one-hidden-layer head (64 units) on all three frozen-feature blocks, trained on all
1,849 human pairs of the HH file. The student is the benchmarks' linear head on the response block only, so it is
not the teacher's own family (bench/simulate.py). Simulated annotators order responses by the truth's rewards,
exactly or with Bradley–Terry noise: a pair is judged with P(a over b) = sigmoid((r_a − r_b) / T), a ranking is drawn
from the Plackett–Luce model with the same strengths exp(r / T) (ordering by r / T + Gumbel noise), whose K = 2 case
is that Bradley–Terry rule. T is given in units of the sd of the truth's reward gaps within the 4-response sets.

4-response sets (HH has 2 responses per prompt): the pair's own 2 responses plus the 2 responses of the row whose
first human turn is nearest (MiniLM sentence cosine; 128 rows find a twin with the same first turn), both
scored as answers to this row's prompt, the neighbour taken from the same side of the split. The borrowed responses
answer a similar question, not this exact dialogue: see the printed statistics and docs/benchmarks.md.

One action = one judgment: a pairwise rating (one of the set's 6 pairs, a new prompt each time until every prompt
has one, then second pairs, …) or one ranking of a set's 4 responses. A ranking enters training as its C(4,2) = 6
pairs weighted 1/6 via `pairs_from_ranking` (the lecture). (With every ranking of the same K, that weighting does not
change the loss: `pairwise_loss` divides by the sum of the weights. It matters once rankings of other K or plain pairs
are mixed in, which this simulation does not do.)
Evaluation on the 370 held-out prompts: accuracy on their human HH labels, and agreement with the truth on all 6
pairs of their 4-response sets. Run:
    HF_HUB_OFFLINE=1 nice -n 19 .venv/bin/python bench/curve_rankings.py --seeds 10 --temperatures 0,1
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from simulate import (  # noqa: E402  (this folder is on sys.path when run as a script)
    FEATURE_BLOCKS,
    STUDENT,
    HeadConfig,
    Standardizer,
    accuracy,
    load_data,
    machine,
    mean_sd,
    rewards,
    train_head,
)

from rewardmodel.train.data import pairs_from_ranking  # noqa: E402

TEACHER = HeadConfig(hidden=64, l2=0.1, blocks=FEATURE_BLOCKS)
K = 4
SET_PAIRS = list(itertools.combinations(range(K), 2))  # the 6 pairs of a set, as positions


def ranking_pairs(order_best_first: list[int]) -> tuple[list[int], list[int], list[float]]:
    """(better positions, worse positions, weights) of a ranking, through the product's `pairs_from_ranking`."""
    placeholders = [str(position) for position in order_best_first]  # positions travel as the "responses"
    pairs = pairs_from_ranking([{"role": "user", "content": "-"}], placeholders)
    return [int(p.chosen) for p in pairs], [int(p.rejected) for p in pairs], [p.weight for p in pairs]


class Annotator:
    """Orders a set's responses by the truth's rewards, exactly (temperature 0) or with Bradley–Terry noise."""

    def __init__(self, truth: torch.Tensor, temperature: float, rng: random.Random):
        self.truth = truth  # [prompts, K]
        self.temperature = temperature
        self.rng = rng

    def pair(self, prompt: int, a: int, b: int) -> tuple[int, int]:
        gap = (self.truth[prompt, a] - self.truth[prompt, b]).item()
        if not self.temperature:
            return (a, b) if gap > 0 else (b, a)
        a_wins = self.rng.random() < 1 / (1 + math.exp(-gap / self.temperature))
        return (a, b) if a_wins else (b, a)

    def ranking(self, prompt: int) -> list[int]:
        scores = self.truth[prompt].tolist()
        if self.temperature:
            # Plackett–Luce with strengths exp(r / T): sort by r / T plus standard Gumbel noise.
            scores = [s / self.temperature - math.log(-math.log(self.rng.random() or 1e-300)) for s in scores]
        return sorted(range(K), key=lambda position: -scores[position])


def pair_actions(pool: list[int], rounds: int, rng: random.Random) -> list[tuple[int, int, int]]:
    """(prompt, a, b) in the order they are judged: one pair of each prompt (random prompt order), then a second …"""
    per_prompt = {prompt: rng.sample(SET_PAIRS, len(SET_PAIRS)) for prompt in pool}
    actions = []
    for round_index in range(rounds):
        order = rng.sample(pool, len(pool))
        actions.extend((prompt, *per_prompt[prompt][round_index]) for prompt in order)
    return actions


def interpolate_actions(xs: list[int], means: list[float], level: float) -> float | None:
    """Actions the curve (xs, means) needs to reach `level`, linear between its points in log(actions)."""
    for (x0, m0), (x1, m1) in itertools.pairwise(zip(xs, means, strict=True)):
        if m0 >= level:
            return float(x0)
        if m0 < level <= m1:
            fraction = (level - m0) / (m1 - m0)
            return math.exp(math.log(x0) + fraction * (math.log(x1) - math.log(x0)))
    return float(xs[-1]) if means[-1] >= level else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--temperatures", default="0,1", help="Bradley–Terry temperatures (× sd of truth gaps).")
    parser.add_argument("--actions", default="25,50,100,200,400,800,1479", help="Ranking action counts (≤ pool).")
    parser.add_argument("--pair-rounds", type=int, default=3, help="Pairs go up to this many per prompt.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()

    data = load_data()
    standardize = Standardizer(data)
    chosen, rejected = standardize(data.chosen), standardize(data.rejected)
    foreign = standardize(data.foreign)
    sets = torch.stack([chosen, rejected, foreign[:, 0], foreign[:, 1]], dim=1)  # [prompts, K, width]
    pool, evaluation = data.train, data.eval

    everyone = list(range(len(data.pairs)))
    teacher = train_head(chosen[everyone], rejected[everyone], TEACHER, seed=0)
    truth = rewards(teacher, sets.reshape(-1, data.width), TEACHER).reshape(len(data.pairs), K)
    gaps = torch.cat([truth[:, a] - truth[:, b] for a, b in SET_PAIRS])
    gap_sd = gaps.std().item()
    twins = sum(1 for s in data.neighbour_similarity if s > 0.999)
    top = truth.argmax(dim=1)
    stats = {
        "teacher_accuracy_human_pool": accuracy(teacher, chosen[pool], rejected[pool], TEACHER),
        "teacher_accuracy_human_eval": accuracy(teacher, chosen[evaluation], rejected[evaluation], TEACHER),
        "truth_gap_sd": gap_sd,
        "sets_with_identical_first_turn": twins,
        "neighbour_similarity_median": sorted(data.neighbour_similarity)[len(data.pairs) // 2],
        "truth_top_is_hh_chosen": (top == 0).float().mean().item(),
        "truth_top_is_hh_rejected": (top == 1).float().mean().item(),
        "truth_top_is_borrowed": (top >= 2).float().mean().item(),
        "hh_responses_above_both_borrowed": (truth[:, :2].min(1).values > truth[:, 2:].max(1).values)
        .float()
        .mean()
        .item(),
    }
    print(json.dumps(stats, indent=1))

    eval_better = [(i, a, b) if truth[i, a] > truth[i, b] else (i, b, a) for i in evaluation for a, b in SET_PAIRS]
    eval_better_x = sets[[i for i, _, _ in eval_better], [a for _, a, _ in eval_better]]
    eval_worse_x = sets[[i for i, _, _ in eval_better], [b for _, _, b in eval_better]]

    def measure(better: list[tuple[int, int]], worse: list[tuple[int, int]], weight: list[float] | None, seed: int):
        x_better = sets[[p for p, _ in better], [q for _, q in better]]
        x_worse = sets[[p for p, _ in worse], [q for _, q in worse]]
        head = train_head(x_better, x_worse, STUDENT, seed, None if weight is None else torch.tensor(weight))
        return (
            accuracy(head, chosen[evaluation], rejected[evaluation], STUDENT),
            accuracy(head, eval_better_x, eval_worse_x, STUDENT),
        )

    ranking_xs = [int(v) for v in args.actions.split(",")]
    pair_xs = sorted({*ranking_xs, *(len(pool) * r for r in range(1, args.pair_rounds + 1))})
    temperatures = [float(v) for v in args.temperatures.split(",")]
    results: dict = {}
    for temperature in temperatures:
        modes = {"pairs": pair_xs, "rankings": ranking_xs}
        runs = {mode: [] for mode in modes}
        flips, ranking_flips = [], []
        for seed in range(args.seeds):
            annotator = Annotator(truth, temperature * gap_sd, random.Random(seed * 7919 + 17))
            rng = random.Random(seed)
            # pairs: one judgment each
            judged = []
            for prompt, a, b in pair_actions(pool, args.pair_rounds, rng):
                better, worse = annotator.pair(prompt, a, b)
                judged.append(((prompt, better), (prompt, worse)))
            flips.append(sum(truth[b[0], b[1]] < truth[w[0], w[1]] for b, w in judged).item() / len(judged))
            runs["pairs"].append(
                [measure([b for b, _ in judged[:n]], [w for _, w in judged[:n]], None, seed) for n in pair_xs]
            )
            # rankings: one judgment = one ordering of a set's 4 responses, expanded to its 6 pairs
            prompts = rng.sample(pool, len(pool))
            expanded = []
            for prompt in prompts:
                better, worse, weights = ranking_pairs(annotator.ranking(prompt))
                expanded.append(
                    [((prompt, b), (prompt, w), wt) for b, w, wt in zip(better, worse, weights, strict=True)]
                )
            rows = [row for ranking in expanded for row in ranking]
            ranking_flips.append(sum(truth[b] < truth[w] for b, w, _ in rows).item() / len(rows))
            curve = []
            for n in ranking_xs:
                rows = [row for ranking in expanded[:n] for row in ranking]
                weights = [wt for _, _, wt in rows]
                curve.append(measure([b for b, _, _ in rows], [w for _, w, _ in rows], weights, seed))
            runs["rankings"].append(curve)
            print(f"T={temperature} seed {seed} done ({time.perf_counter() - started:.0f} s)", flush=True)
        summary = {
            "pair_judgments_against_truth": mean_sd(flips)[0],
            "ranking_pairs_against_truth": mean_sd(ranking_flips)[0],
            "modes": {},
        }
        for mode, xs in modes.items():
            entry: dict = {"actions": xs, "responses_read": [x * (2 if mode == "pairs" else K) for x in xs]}
            for metric_index, metric in enumerate(("human", "truth")):
                values = [[run[i][metric_index] for run in runs[mode]] for i in range(len(xs))]
                entry[metric] = {
                    "mean": [mean_sd(v)[0] for v in values],
                    "sd": [mean_sd(v)[1] for v in values],
                    "min": [min(v) for v in values],
                    "max": [max(v) for v in values],
                }
            summary["modes"][mode] = entry
        # Equal accuracy: pair judgments the pairs curve needs to match each point of the weighted rankings curve.
        pairs_entry, rank_entry = summary["modes"]["pairs"], summary["modes"]["rankings"]
        summary["pairs_needed_for_ranking_accuracy"] = {
            metric: [
                interpolate_actions(pair_xs, pairs_entry[metric]["mean"], level) for level in rank_entry[metric]["mean"]
            ]
            for metric in ("human", "truth")
        }
        results[str(temperature)] = {"summary": summary, "runs": runs}

    wall = time.perf_counter() - started
    print(f"\nteacher/truth: {TEACHER}; student: {STUDENT}")
    for temperature in temperatures:
        summary = results[str(temperature)]["summary"]
        print(
            f"\n### T = {temperature} × gap sd: {summary['pair_judgments_against_truth']:.1%} of pair judgments and "
            f"{summary['ranking_pairs_against_truth']:.1%} of the pairs of rankings go against the truth"
        )
        print("| mode | actions | responses read | human-label acc. mean ± sd | truth agreement mean ± sd |")
        print("|---|---|---|---|---|")
        for mode, entry in summary["modes"].items():
            for i, x in enumerate(entry["actions"]):
                h, t = entry["human"], entry["truth"]
                print(
                    f"| {mode} | {x} | {entry['responses_read'][i]} | {h['mean'][i]:.1%} ± {h['sd'][i]:.1%} | "
                    f"{t['mean'][i]:.1%} ± {t['sd'][i]:.1%} |"
                )
        for metric, needed in summary["pairs_needed_for_ranking_accuracy"].items():
            cells = [
                f"{x} rankings ≈ {'>' + str(pair_xs[-1]) if n is None else round(n)} pairs"
                for x, n in zip(ranking_xs, needed, strict=True)
            ]
            print(f"equal {metric} accuracy: " + "; ".join(cells))
    print(f"wall {wall:.0f} s; {json.dumps(machine())}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        output = {"stats": stats, "wall_seconds": round(wall, 1), "machine": machine(), "results": results}
        args.json.write_text(json.dumps(output, indent=1))


if __name__ == "__main__":
    main()
