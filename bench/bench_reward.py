"""Reward-model training: our trainer against TRL's RewardTrainer, side by side in one run. NOT part of CI.

Needs TRL (bench/requirements.txt), in a venv that also sees the project's packages, e.g.
    python3 -m venv /work/benchvenv
    echo "$PWD/.venv/lib/python3.11/site-packages" > /work/benchvenv/lib/python3.11/site-packages/main.pth
    /work/benchvenv/bin/pip install -r bench/requirements.txt
Throughput (pairs/s of training wall time, and pairs per process CPU-second of the whole call; same pairs,
same backbone, same batch size, 1 epoch, no eval):
    HF_HUB_OFFLINE=1 /work/benchvenv/bin/python bench/bench_reward.py --pairs 240
Precision: ours uses bf16 autocast where the hardware multiplies bf16 fast (--ours-precision auto, the trainer's
default), TRL runs fp32 as in the issue's reference run; --trl-bf16 gives TRL its own default bf16=True instead.
Quality (prompt-disjoint 80/20 split of the HH file, eval accuracy of each):
    HF_HUB_OFFLINE=1 /work/benchvenv/bin/python bench/bench_reward.py --quality --epochs 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rewardmodel.train import (  # noqa: E402
    DEFAULT_BACKBONE,
    PreferencePair,
    RewardTrainConfig,
    evaluate_pairs,
    load_reward_model,
    split_by_group,
    train_reward_model,
)

# The shared data folder beside the checkout (../shared/data from the repository, or /work/shared/data from a
# worktree under /work/wt), or ARBITER_HH_FILE.
_SHARED_HH = [
    root / "shared" / "data" / "hh_rlhf_harmless_test_dev.jsonl" for root in Path(__file__).resolve().parents[1:4]
]
HH_FILE = Path(os.environ.get("ARBITER_HH_FILE") or next((p for p in _SHARED_HH if p.exists()), _SHARED_HH[1]))
ASSISTANT = "\n\nAssistant:"


def parse_dialogue(text: str) -> list[dict]:
    """'\\n\\nHuman: …\\n\\nAssistant: …' as chat messages."""
    messages = []
    for chunk in text.split("\n\nHuman:")[1:]:
        human, *assistant_turns = chunk.split(ASSISTANT)
        messages.append({"role": "user", "content": human.strip()})
        messages.extend({"role": "assistant", "content": turn.strip()} for turn in assistant_turns)
    return messages


def load_hh(path: Path) -> list[PreferencePair]:
    """HH rows are whole dialogues sharing all but the last Assistant turn: split off the shared prompt.

    The prompt ends at the last "\n\nAssistant:" that both texts share (a few rows have a "Human:" inside the final
    turn, so the last "\n\nAssistant:" of each text is not always the shared one).
    """
    pairs = []
    for line_number, line in enumerate(path.read_text().splitlines(), 1):
        row = json.loads(line)
        chosen, rejected = row["chosen"], row["rejected"]
        shared = os.path.commonprefix([chosen, rejected])
        if ASSISTANT not in shared:
            raise ValueError(f"{path}:{line_number}: chosen and rejected share no dialogue before the answer")
        cut = shared.rindex(ASSISTANT)
        prompt = parse_dialogue(chosen[:cut])
        answer_start = cut + len(ASSISTANT)
        pairs.append(PreferencePair(prompt, chosen[answer_start:].strip(), rejected[answer_start:].strip()))
    return pairs


def as_hh_rows(pairs: list[PreferencePair]) -> list[dict]:
    """The pairs back as HH text for TRL (implicit prompt): the same transcript our trainer builds for MiniLM."""
    from rlhf.prompts import hh_transcript

    return [
        {
            "chosen": hh_transcript(p.prompt) + " " + p.chosen,
            "rejected": hh_transcript(p.prompt) + " " + p.rejected,
        }
        for p in pairs
    ]


def run_ours(train: list[PreferencePair], evaluation: list[PreferencePair], args, output_dir: str) -> dict:
    config = RewardTrainConfig(
        backbone=args.backbone,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.ours_lr,
        precision=args.ours_precision,
        eval_fraction=0.0,
        max_length=args.max_length,
        seed=args.seed,
        log_every=1_000_000,  # the option's upper bound: no progress lines within a timed run
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    final = train_reward_model(train, config, output_dir)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    result = {
        "pairs_given": len(train),
        "pairs_dropped": final["dropped_pairs"],
        "pairs_trained": final["pairs_trained"],
        "train_seconds": round(final["train_seconds"], 1),
        "wall_seconds": round(wall, 1),
        "pairs_per_second": final["pairs_trained"] / final["train_seconds"],
        "cpu_seconds": round(cpu, 1),
        "pairs_per_cpu_second": final["pairs_trained"] / cpu,
        "prompt_truncated_pairs": final["prompt_truncated_pairs"],
        "precision": final["precision"],
    }
    if evaluation:
        result["eval"] = evaluate_pairs(load_reward_model(output_dir), evaluation)
    return result


def run_trl(train: list[PreferencePair], evaluation: list[PreferencePair], args, output_dir: str) -> dict:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    config = RewardConfig(
        output_dir=output_dir,
        bf16=args.trl_bf16,  # off by default, as in the reference run; on = TRL's own default (autocast)
        eos_token="[SEP]",  # MiniLM has no EOS
        max_length=args.max_length,  # MiniLM has 512 positions; TRL drops longer pairs
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        seed=args.seed,
        report_to="none",
        save_strategy="no",
        logging_steps=10**9,
        use_cpu=not args.cuda,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer = RewardTrainer(model=args.backbone, args=config, train_dataset=Dataset.from_list(as_hh_rows(train)))
    output = trainer.train()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    kept = len(trainer.train_dataset)
    result = {
        "pairs_given": len(train),
        "pairs_dropped": len(train) - kept,
        "pairs_trained": kept * args.epochs,
        "train_seconds": round(output.metrics["train_runtime"], 1),
        "wall_seconds": round(wall, 1),
        "pairs_per_second": kept * args.epochs / output.metrics["train_runtime"],
        "cpu_seconds": round(cpu, 1),
        "pairs_per_cpu_second": kept * args.epochs / cpu,
        "precision": "bf16" if args.trl_bf16 else "fp32",
    }
    if evaluation:
        trainer.save_model(output_dir)
        # Score TRL's model on every eval pair with the same scorer as ours (TRL's own eval would drop long pairs).
        result["eval"] = evaluate_pairs(load_reward_model(output_dir), evaluation)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HH_FILE)
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--pairs", type=int, default=200, help="throughput mode: pairs each trainer sees")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step for both (TRL's default: 8)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--ours-lr", type=float, default=RewardTrainConfig.learning_rate)
    parser.add_argument(
        "--ours-precision", choices=["auto", "bf16", "fp32"], default="auto", help="auto: bf16 where it is fast"
    )
    parser.add_argument("--trl-bf16", action="store_true", help="TRL with its default bf16=True (autocast)")
    parser.add_argument("--quality", action="store_true", help="80/20 prompt-disjoint split, report eval accuracy")
    parser.add_argument("--only", choices=["ours", "trl"], help="run one side only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import torch

    args.cuda = torch.cuda.is_available()
    pairs = load_hh(args.data)
    if args.quality:
        train, evaluation = split_by_group(pairs, 0.2, args.seed)
    else:
        random.Random(args.seed).shuffle(pairs)
        train, evaluation = pairs[: args.pairs], []

    results = {
        "mode": "quality" if args.quality else "throughput",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"
        + (f", {torch.cuda.get_device_name()}" if args.cuda else ""),
        "backbone": args.backbone,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "train_pairs": len(train),
        "eval_pairs": len(evaluation),
    }
    with tempfile.TemporaryDirectory() as scratch:
        if args.only != "trl":
            results["ours"] = run_ours(train, evaluation, args, f"{scratch}/ours")
            print(json.dumps({"ours": results["ours"]}), flush=True)
        if args.only != "ours":
            results["trl"] = run_trl(train, evaluation, args, f"{scratch}/trl")
            print(json.dumps({"trl": results["trl"]}), flush=True)
    if "ours" in results and "trl" in results:
        ours, trl = results["ours"], results["trl"]
        results["speedup_wall"] = ours["pairs_per_second"] / trl["pairs_per_second"]
        # CPU seconds of the whole call (load, tokenize, train): steadier than wall time on a shared machine.
        results["speedup_cpu"] = ours["pairs_per_cpu_second"] / trl["pairs_per_cpu_second"]
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
