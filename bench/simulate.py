"""Simulated annotation on the HH development file: frozen-backbone features, a small reward head, evaluation.

Shared by bench/curve_active.py (issue 15) and bench/curve_rankings.py (issue 12). NOT part of CI.

Why a frozen backbone: a learning curve retrains the reward model hundreds of times (rounds × strategies × seeds),
and one full MiniLM fine-tune on the 1,479 training pairs takes about 3 minutes on this 2-core CPU (docs/benchmarks.md,
"Quality"). So every (prompt, response) is run once through the frozen MiniLM-L6 (the reward model's own backbone,
same transcript text, same left truncation at 512 tokens), the features are cached under var/bench/, and each
simulation trains only a small head on them, with the product's `pairwise_loss` (per-pair weights honoured).

Features of one (prompt, response), each 384 wide, concatenated:
- `cls`: the last layer at the first ([CLS]) position, what the reward model's head reads (through the pooler);
- `mean`: mean over every token (how sentence-transformers pools this model);
- `response`: mean over the response's own tokens (zeros for an empty response).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from bench_reward import HH_FILE, load_hh

from rewardmodel.train.config import DEFAULT_BACKBONE
from rewardmodel.train.data import (
    PreferencePair,
    join_truncated,
    prompt_and_response_text,
    special_tokens_around,
    split_by_group,
)
from rewardmodel.train.loss import pairwise_loss

# One thread: these are small problems, and on 2 cores shared with other jobs two spinning OpenMP threads made one
# head training 12x slower in wall time (58.7 s against 5.0 s for 4,437 pairs at load 10) and 15x in CPU time.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "var" / "bench"
MAX_LENGTH = 512  # the reward trainer's default
EVAL_FRACTION = 0.2
EVAL_SEED = 0  # the same prompt-disjoint split as bench_reward.py --quality: 1,479 train / 370 eval pairs
FEATURE_BLOCKS = ("cls", "mean", "response")
FEATURE_WIDTH = 384
FEATURES_VERSION = 1  # bump when what is cached changes


# --- data ------------------------------------------------------------------------------------------------------------


@dataclass
class HHData:
    """The HH file as pairs, the fixed prompt-disjoint split, and per-response features.

    `chosen[i]`, `rejected[i]`: features of pair i's two responses under its prompt. `foreign[i]`: features of the two
    responses of pair `neighbour[i]` (the row whose first human turn is nearest to pair i's) under pair i's prompt,
    for the rankings simulation.
    """

    pairs: list[PreferencePair]
    train: list[int]
    eval: list[int]
    chosen: torch.Tensor
    rejected: torch.Tensor
    neighbour: list[int] = field(default_factory=list)
    neighbour_similarity: list[float] = field(default_factory=list)
    foreign: torch.Tensor | None = None  # [pairs, 2, width]: neighbour's chosen, neighbour's rejected

    @property
    def width(self) -> int:
        return self.chosen.shape[1]


def split_indices(pairs: list[PreferencePair]) -> tuple[list[int], list[int]]:
    """The fixed prompt-disjoint split with the product's `split_by_group`, as indices into `pairs`."""
    train, evaluation = split_by_group(pairs, EVAL_FRACTION, EVAL_SEED)
    position = {id(pair): index for index, pair in enumerate(pairs)}
    return sorted(position[id(p)] for p in train), sorted(position[id(p)] for p in evaluation)


def _cache_key() -> str:
    digest = hashlib.sha256()
    digest.update(HH_FILE.read_bytes())
    digest.update(json.dumps([DEFAULT_BACKBONE, MAX_LENGTH, EVAL_FRACTION, EVAL_SEED, FEATURES_VERSION]).encode())
    return f"hh_features_{digest.hexdigest()[:16]}.pt"


def load_data(log=print) -> HHData:
    """The HH pairs with cached features (computed on first use: a few minutes on 2 CPU cores)."""
    pairs = load_hh(HH_FILE)
    train, evaluation = split_indices(pairs)
    cache = CACHE_DIR / _cache_key()
    if cache.is_file():
        saved = torch.load(cache)
        return HHData(pairs, train, evaluation, **saved)
    started = time.perf_counter()
    encoder = FeatureEncoder()
    prompts = [pair.prompt for pair in pairs]
    log(f"embedding {2 * len(pairs)} (prompt, response) texts with the frozen backbone …")
    chosen = encoder.features(prompts, [pair.chosen for pair in pairs])
    rejected = encoder.features(prompts, [pair.rejected for pair in pairs])
    neighbour, similarity = nearest_first_turns(encoder, pairs, train, evaluation)
    log(f"embedding {2 * len(pairs)} (prompt, neighbour's response) texts for the 4-response sets …")
    foreign_chosen = encoder.features(prompts, [pairs[j].chosen for j in neighbour])
    foreign_rejected = encoder.features(prompts, [pairs[j].rejected for j in neighbour])
    saved = {
        "chosen": chosen,
        "rejected": rejected,
        "neighbour": neighbour,
        "neighbour_similarity": similarity,
        "foreign": torch.stack([foreign_chosen, foreign_rejected], dim=1),
    }
    log(f"features computed in {time.perf_counter() - started:.0f} s, cached in {cache}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(saved, cache)
    return HHData(pairs, train, evaluation, **saved)


class FeatureEncoder:
    """The frozen reward backbone (plain BertModel: every position of the last layer is needed for the means)."""

    def __init__(self, backbone: str = DEFAULT_BACKBONE, batch_size: int = 32):
        from transformers import AutoModel

        from rewardmodel.train.backbone import load_tokenizer
        from rlhf.devices import bf16_is_fast, pick_device

        self.device = pick_device("")
        self.bf16 = bf16_is_fast(self.device)
        self.tokenizer = load_tokenizer(backbone)
        self.model = AutoModel.from_pretrained(backbone, dtype=torch.float32).to(self.device).eval()
        self.batch_size = batch_size

    def encode(self, prompts: list[list[dict]], responses: list[str]) -> tuple[list[list[int]], list[int]]:
        """Token ids as the reward trainer builds them (encode_texts), and how many end tokens are the response's."""
        prefix, suffix = special_tokens_around(self.tokenizer)
        texts = [prompt_and_response_text(self.tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
        prompt_ids = self.tokenizer([t[0] for t in texts], add_special_tokens=False, verbose=False)["input_ids"]
        response_ids = self.tokenizer([t[1] for t in texts], add_special_tokens=False, verbose=False)["input_ids"]
        sequences, response_lengths = [], []
        room = MAX_LENGTH - len(prefix) - len(suffix)
        for p_ids, r_ids in zip(prompt_ids, response_ids, strict=True):
            ids, _ = join_truncated(prefix, p_ids, r_ids, suffix, MAX_LENGTH)
            sequences.append(ids)
            response_lengths.append(min(len(r_ids), room))
        return sequences, response_lengths

    @torch.inference_mode()
    def features(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
        from rewardmodel.train.scoring import collate
        from rlhf.devices import autocast_for

        sequences, response_lengths = self.encode(prompts, responses)
        _, suffix = special_tokens_around(self.tokenizer)
        out = torch.zeros(len(sequences), FEATURE_WIDTH * len(FEATURE_BLOCKS))
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = collate([sequences[i] for i in chunk], self.tokenizer.pad_token_id, self.device)
            with autocast_for(self.device, self.bf16):
                hidden = self.model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            mean = (hidden * mask).sum(1) / mask.sum(1)
            response_mask = torch.zeros_like(mask)
            for row, index in enumerate(chunk):
                end = len(sequences[index]) - len(suffix)
                response_mask[row, end - response_lengths[index] : end] = 1.0
            response_mean = (hidden * response_mask).sum(1) / response_mask.sum(1).clamp(min=1.0)
            out[chunk] = torch.cat([hidden[:, 0], mean, response_mean], dim=1).cpu()
        return out

    @torch.inference_mode()
    def sentence(self, texts: list[str]) -> torch.Tensor:
        """Mean-pooled, unit-length embeddings of plain texts (the sentence-transformers use of this model)."""
        from rewardmodel.train.scoring import collate

        ids = self.tokenizer(texts, truncation=True, max_length=128, verbose=False)["input_ids"]
        out = torch.zeros(len(texts), FEATURE_WIDTH)
        for start in range(0, len(ids), self.batch_size):
            batch = collate(ids[start : start + self.batch_size], self.tokenizer.pad_token_id, self.device)
            hidden = self.model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            out[start : start + len(ids[start : start + self.batch_size])] = (
                (hidden * mask).sum(1) / mask.sum(1)
            ).cpu()
        return torch.nn.functional.normalize(out, dim=1)


def nearest_first_turns(
    encoder: FeatureEncoder, pairs: list[PreferencePair], train: list[int], evaluation: list[int]
) -> tuple[list[int], list[float]]:
    """For each pair, the other pair on the same side of the split whose first human turn is most similar.

    Rows whose first human turn is the same text find each other (similarity 1): 93 first turns occur twice in the
    file, and 64 of those twins fall on one side of the split (128 rows). The rest get the nearest by cosine of
    MiniLM sentence embeddings (median similarity 0.57: a related question, rarely the same one).
    """
    first_turns = [next(m["content"] for m in pair.prompt if m["role"] == "user") for pair in pairs]
    embedded = encoder.sentence(first_turns)
    neighbour = [0] * len(pairs)
    similarity = [0.0] * len(pairs)
    for side in (train, evaluation):
        side_tensor = torch.tensor(side)
        sims = embedded[side_tensor] @ embedded[side_tensor].T
        sims.fill_diagonal_(-2.0)
        best = sims.argmax(dim=1)
        for row, index in enumerate(side):
            neighbour[index] = side[best[row].item()]
            similarity[index] = sims[row, best[row]].item()
    return neighbour, similarity


# --- the reward head -------------------------------------------------------------------------------------------------


@dataclass
class HeadConfig:
    """A small reward head on the frozen features, trained full-batch with AdamW on `pairwise_loss`."""

    hidden: int = 0  # 0: linear head r = w·x + b; else one hidden layer (ReLU) of this width
    steps: int = 300
    learning_rate: float = 0.01
    l2: float = 1.0  # λ·‖W‖² added to the loss (weights only): features are many and weak, labels few
    blocks: tuple[str, ...] = ("response",)


# Chosen once on an inner prompt-disjoint split of the 1,479 training pairs (never on the eval split): a linear head
# on the response-token mean with λ = 1 was best of {cls, mean, response, mean+response, all} × λ ∈ {1e-4 … 10}
# at both 200 and 1,183 pairs (62 % and 66 % there); one hidden layer did not help.
STUDENT = HeadConfig()


def select_blocks(features: torch.Tensor, blocks: tuple[str, ...]) -> torch.Tensor:
    columns = [features[..., FEATURE_WIDTH * FEATURE_BLOCKS.index(b) : FEATURE_WIDTH * (FEATURE_BLOCKS.index(b) + 1)]
               for b in blocks]  # fmt: skip
    return torch.cat(columns, dim=-1)


class Standardizer:
    """Per-column mean and sd over every response feature of the file (no labels used)."""

    def __init__(self, data: HHData):
        everything = [data.chosen, data.rejected]
        if data.foreign is not None:
            everything.append(data.foreign.reshape(-1, data.width))
        stacked = torch.cat(everything)
        self.mean = stacked.mean(0)
        self.std = stacked.std(0).clamp(min=1e-6)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std


def make_head(width: int, config: HeadConfig) -> torch.nn.Module:
    if config.hidden:
        return torch.nn.Sequential(
            torch.nn.Linear(width, config.hidden), torch.nn.ReLU(), torch.nn.Linear(config.hidden, 1)
        )
    return torch.nn.Linear(width, 1)


def train_head(
    x_better: torch.Tensor,
    x_worse: torch.Tensor,
    config: HeadConfig,
    seed: int,
    weight: torch.Tensor | None = None,
) -> torch.nn.Module:
    """A head trained on (better, worse) feature pairs with the product's pairwise loss and per-pair weights."""
    torch.manual_seed(seed)
    x_better, x_worse = select_blocks(x_better, config.blocks), select_blocks(x_worse, config.blocks)
    head = make_head(x_better.shape[1], config)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.learning_rate, weight_decay=0.0)
    matrices = [p for name, p in head.named_parameters() if name.endswith("weight")]
    for _ in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        loss = pairwise_loss(head(x_better).squeeze(-1), head(x_worse).squeeze(-1), weight=weight)
        loss = loss + config.l2 * sum((m**2).sum() for m in matrices)
        loss.backward()
        optimizer.step()
    return head.eval()


@torch.inference_mode()
def rewards(head: torch.nn.Module, features: torch.Tensor, config: HeadConfig) -> torch.Tensor:
    return head(select_blocks(features, config.blocks)).squeeze(-1)


def accuracy(head: torch.nn.Module, x_chosen: torch.Tensor, x_rejected: torch.Tensor, config: HeadConfig) -> float:
    """Share of pairs where the chosen response scores higher (a tie counts as wrong, as preference_metrics)."""
    return (rewards(head, x_chosen, config) > rewards(head, x_rejected, config)).float().mean().item()


# --- reporting -------------------------------------------------------------------------------------------------------


def machine() -> dict:
    """What docs/benchmarks.md records beside every figure."""
    cpu = ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "")
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def mean_sd(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def first_reaching(xs: list[int], means: list[float], target: float) -> int | None:
    """The first x whose mean accuracy is at least `target` (None: never)."""
    return next((x for x, m in zip(xs, means, strict=True) if m >= target), None)


def seeded(seed: int) -> random.Random:
    return random.Random(seed)
