"""DPO training: our trainer (policy/reinforce/dpo.py) against TRL's DPOTrainer, side by side in one run. NOT CI.

Needs TRL in a venv that also sees the project's packages (as bench/bench_reward.py), e.g.
    python3 -m venv /tmp/benchvenv
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/benchvenv/lib/python3.11/site-packages/main.pth
    /tmp/benchvenv/bin/pip install --no-deps trl==1.16.0 datasets==5.2.0 multiprocess dill xxhash pyarrow pandas \
        python-dateutil pytz tzdata      # --no-deps: keeps the project's CPU torch 2.13
Then (the default policy SmolLM2-135M-Instruct, fp32, HH pairs short enough that neither side truncates):
    HF_HUB_OFFLINE=1 /tmp/benchvenv/bin/python bench/bench_dpo.py --pairs 32 --batch-size 4 --max-length 256

Same pairs in the same order (ours shuffles with its seed; TRL gets that order with a sequential sampler), same β,
learning rate (constant), batch, AdamW, gradient clipping, fp32, the reference's log-probabilities precomputed on
both sides, TRL without gradient checkpointing (its default is on: slower). Reported: pairs/s over the training
call (ours: the whole `train_dpo` call, model loading and the reference pass included; TRL: `trainer.train()`, the
reference pass included, loading and tokenizing not), and the first steps' losses of both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from bench_reward import load_hh  # noqa: E402

from policy.reinforce import DPOConfig, default_policy_path, train_dpo  # noqa: E402
from policy.reinforce.loading import load_policy  # noqa: E402
from rewardmodel.train import PreferencePair  # noqa: E402

HH_FILES = [Path(__file__).resolve().parents[3] / "shared" / "data" / "hh_rlhf_harmless_test_dev.jsonl"]
HH_FILES.append(Path(__file__).resolve().parents[2] / "shared" / "data" / HH_FILES[0].name)


def short_pairs(pairs: list[PreferencePair], tokenizer, max_length: int, count: int) -> list[PreferencePair]:
    """The first `count` pairs whose prompt + answer fit in max_length tokens on both sides (nothing truncated)."""
    kept = []
    for pair in pairs:
        if not pair.prompt or pair.prompt[-1]["role"] != "user":
            continue
        texts = [
            tokenizer.apply_chat_template([*pair.prompt, {"role": "assistant", "content": a}], tokenize=False)
            for a in (pair.chosen, pair.rejected)
        ]
        lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
        if max(lengths) <= max_length - 4 and pair.chosen.strip() and pair.rejected.strip():
            kept.append(pair)
        if len(kept) == count:
            break
    return kept


def run_ours(pairs: list[PreferencePair], model_path: str, args) -> dict:
    config = DPOConfig(
        epochs=1,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        beta=args.beta,
        max_length=args.max_length,
        max_prompt_length=args.max_length - 1,
        eval_fraction=0.0,
        checkpoint_every=0,
        seed=args.seed,
    )
    losses = []
    with tempfile.TemporaryDirectory() as output_dir:
        started = time.perf_counter()
        result = train_dpo(model_path, pairs, config, output_dir, on_log=lambda step, m: losses.append(m["loss"]))
        wall = time.perf_counter() - started
    return {"wall_seconds": round(wall, 1), "pairs_per_second": len(pairs) / wall, "losses": losses, **result}


def run_trl(pairs: list[PreferencePair], model_path: str, args) -> dict:
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from trl import DPOConfig as TRLConfig
    from trl import DPOTrainer

    # Our trainer's epoch-1 order (random.Random(seed).shuffle), given to TRL in that order, read sequentially.
    order = list(range(len(pairs)))
    random.Random(args.seed).shuffle(order)
    rows = [
        {
            "prompt": pairs[i].prompt,
            "chosen": [{"role": "assistant", "content": pairs[i].chosen}],
            "rejected": [{"role": "assistant", "content": pairs[i].rejected}],
        }
        for i in order
    ]

    class InOrder(DPOTrainer):
        def _get_train_sampler(self, *a, **k):
            return SequentialSampler(self.train_dataset)

    model, tokenizer = load_policy(model_path, device=torch.device("cpu"), dtype=torch.float32)
    tokenizer.padding_side = "right"
    with tempfile.TemporaryDirectory() as output_dir:
        config = TRLConfig(
            output_dir=output_dir,
            beta=args.beta,
            learning_rate=args.lr,
            lr_scheduler_type="constant",
            per_device_train_batch_size=args.batch_size,
            num_train_epochs=1,
            max_length=args.max_length,
            precompute_ref_log_probs=True,
            gradient_checkpointing=False,
            bf16=False,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            seed=args.seed,
            dataloader_num_workers=0,
        )
        trainer = InOrder(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
        kept = len(trainer.train_dataset)  # TRL drops a pair whose prompt alone fills max_length
        started = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - started
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {
        "wall_seconds": round(wall, 1),
        "pairs_per_second": kept / wall,
        "pairs_kept": kept,
        "steps": trainer.state.global_step,
        "losses": losses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("ours", "trl"))
    parser.add_argument("--data", type=Path, default=next((p for p in HH_FILES if p.is_file()), HH_FILES[0]))
    parser.add_argument("--model-cache", default=os.environ.get("ARBITER_MODEL_CACHE", "/tmp/arbiter-bench-models"))
    args = parser.parse_args()

    model_path = default_policy_path(args.model_cache)
    _, tokenizer = load_policy(model_path, device=torch.device("cpu"))
    pairs = short_pairs(load_hh(args.data), tokenizer, args.max_length, args.pairs)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if "Model name" in line), "?")
    report = {
        "machine": f"{model_name}, {platform.machine()}, {os.cpu_count()} CPUs",
        "torch_threads": torch.get_num_threads(),
        "load_before": os.getloadavg(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "pairs": len(pairs),
    }
    if args.only != "trl":
        report["ours"] = run_ours(pairs, model_path, args)
    if args.only != "ours":
        report["trl"] = run_trl(pairs, model_path, args)
    if "ours" in report and "trl" in report:
        report["ratio_pairs_per_second"] = report["ours"]["pairs_per_second"] / report["trl"]["pairs_per_second"]
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
