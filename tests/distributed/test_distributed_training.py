"""Multi-process training through torchrun on this machine's CPU (gloo, 2 processes), Django-free: the 2-process
reward run follows the 1-process run's loss curve, REINFORCE trains on 2 ranks, a stop request ends every rank,
a rank that dies fails the launch with the reason and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from policy.reinforce import ReinforceConfig
from rewardmodel.train import (
    PreferencePair,
    RankedResponses,
    RewardTrainConfig,
    TrainingStopped,
    evaluate_pairs,
    load_reward_model,
    train_reward_model,
)
from rewardmodel.train.launch import write_job
from rlhf.distributed import DistributedTrainingError, launch_torchrun, rank_pids
from rlhf.options import OptionError
from rlhf.rankings import pairs_of
from tests.policy.conftest import CHAT_TEMPLATE, build_policy
from tests.rewardmodel.helpers import COLORS, NOUNS, build_tiny_backbone

# The comparison: fp32 (bf16 would round differently with the per-rank padding), 7 pairs a batch so one rank
# takes 4 pairs and the other 3 (the weighted shares must still add up to the batch's loss).
COMPARED = {
    "epochs": 2,
    "batch_size": 7,
    "learning_rate": 1e-3,
    "eval_fraction": 0.25,
    "log_every": 1,
    "precision": "fp32",
    "checkpoint_every": 0,
}
# Float sums in a different order (the gradient all-reduce, per-rank padding): agreement to 1e-5, not bit-exact.
LOSS_TOLERANCE = 1e-5


def preference_pairs(count: int = 36) -> list[PreferencePair]:
    pairs = []
    for n in range(count):
        color, noun = COLORS[n % len(COLORS)], NOUNS[n % len(NOUNS)]
        good, bad = f"the {color} answer is good .", f"the {color} answer is bad ."
        pairs.append(
            PreferencePair(
                prompt=[{"role": "user", "content": f"tell me about the {color} {noun} ?"}],
                chosen=good if n % 3 else f"{good} yes",
                rejected=bad,
                level="slight" if n % 3 == 0 else "clear",
                weight=0.5 if n % 4 == 0 else 1.0,  # unequal weights: the shares are weighted means
            )
        )
    return pairs


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> str:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone"))


def launch_reward(tmp_path: Path, pairs, config: RewardTrainConfig, **callbacks) -> tuple[dict, Path]:
    work_dir, output_dir = tmp_path / "work", tmp_path / "model"
    write_job(work_dir, pairs, config, output_dir)
    return launch_torchrun("rewardmodel.train.launch", work_dir, config.processes, **callbacks), output_dir


def test_two_processes_follow_the_one_process_loss_curve(tmp_path, backbone):
    pairs = preference_pairs()
    one_logs: dict[int, dict] = {}
    one = train_reward_model(
        pairs, RewardTrainConfig(backbone=backbone, **COMPARED), tmp_path / "one", on_log=one_logs.__setitem__
    )
    two_logs: dict[int, dict] = {}
    progress: list[tuple] = []
    two, output_dir = launch_reward(
        tmp_path,
        pairs,
        RewardTrainConfig(backbone=backbone, processes=2, **COMPARED),
        on_log=two_logs.__setitem__,
        on_progress=lambda *args: progress.append(args),
    )

    assert sorted(two_logs) == sorted(one_logs) == list(range(1, one["steps"] + 1))
    differences = [abs(two_logs[step]["loss"] - one_logs[step]["loss"]) for step in one_logs]
    print(f"loss, 1 vs 2 processes, max |difference| over {len(differences)} steps: {max(differences):.2e}")
    assert max(differences) < LOSS_TOLERANCE
    for step in one_logs:  # the same pairs counted, the same pairs right
        assert two_logs[step]["accuracy"] == one_logs[step]["accuracy"]
    assert two["eval_accuracy"] == one["eval_accuracy"]
    assert abs(two["eval_loss"] - one["eval_loss"]) < LOSS_TOLERANCE
    assert two["pairs_trained"] == one["pairs_trained"] and two["steps"] == one["steps"]
    # Rank 0 saved what one process saves, and only rank 0 reported.
    assert sorted(p.name for p in output_dir.iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert ("saving" in {phase for *_, phase in progress}) and progress[-1][0] == one["steps"]


def test_rankings_train_and_are_scored_the_same_on_two_processes(tmp_path, backbone):
    """The rankings travel with the job: two pairs drawn per ranking each epoch, and Kendall's tau on the held-out
    rankings, as one process does."""
    quality = ("good", "fine", "poor", "bad")
    rankings, pairs = [], []
    for n in range(12):
        color = COLORS[n % len(COLORS)]
        prompt = [{"role": "user", "content": f"tell me about the {color} {NOUNS[n % len(NOUNS)]} {n} ?"}]
        words = quality[n % 4 :] + quality[: n % 4]
        tiers = [[words.index(word) + 1] for word in quality]
        ranking = RankedResponses(prompt, [f"the {color} answer is {word} ." for word in words], tiers)
        rankings.append(ranking)
        pairs += [
            PreferencePair(
                prompt, ranking.responses[better - 1], ranking.responses[worse - 1], weight=weight, ranking=f"r{n}"
            )
            for better, worse, weight in pairs_of(tiers)
        ]
    options = {**COMPARED, "eval_fraction": 0.5, "pairs_per_ranking": 2}
    one = train_reward_model(
        pairs, RewardTrainConfig(backbone=backbone, **options), tmp_path / "one", rankings=rankings
    )
    config = RewardTrainConfig(backbone=backbone, processes=2, **options)
    write_job(tmp_path / "work", pairs, config, tmp_path / "two", rankings=rankings)
    two = launch_torchrun("rewardmodel.train.launch", tmp_path / "work", 2)

    assert one["eval_rankings"] == two["eval_rankings"] > 0
    assert two["eval_kendall_tau"] == pytest.approx(one["eval_kendall_tau"], abs=1e-4)
    assert two["pairs_trained"] == one["pairs_trained"] == 2 * 2 * (12 - one["eval_rankings"])


def test_a_stop_request_stops_every_rank(tmp_path, backbone):
    config = RewardTrainConfig(backbone=backbone, processes=2, epochs=200, batch_size=2, precision="fp32")
    steps: list[int] = []
    with pytest.raises(TrainingStopped):
        launch_reward(
            tmp_path,
            preference_pairs(),
            config,
            on_progress=lambda step, total, phase: steps.append(step),
            should_stop=lambda: bool(steps) and steps[-1] >= 3,
        )
    assert 3 <= steps[-1] < 200
    assert not any(process_alive(pid) for pid in rank_pids(tmp_path / "work", 2))
    assert not (tmp_path / "model").exists()


def test_a_rank_that_dies_fails_the_launch_with_the_reason_and_leaves_nothing_behind(tmp_path, backbone):
    config = RewardTrainConfig(backbone=backbone, processes=2, epochs=500, batch_size=2, precision="fp32")
    work_dir = tmp_path / "work"
    killed: list[int] = []

    def kill_rank_1_once_training(step: int, total: int, phase: str) -> None:
        if step >= 2 and not killed:
            pid = rank_pids(work_dir, 2)[1]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with pytest.raises(DistributedTrainingError) as failure:
        launch_reward(tmp_path, preference_pairs(), config, on_progress=kill_rank_1_once_training)

    message = str(failure.value)
    print(message)
    assert "a training process failed" in message and "exit code" in message
    assert "rank : 1" in message and "SIGKILL" in message
    pids = rank_pids(work_dir, 2)
    assert len(pids) == 2 and killed
    assert not any(process_alive(pid) for pid in pids)
    assert not launched_processes_of(work_dir)


@pytest.mark.parametrize("options", [{}, {"lora_rank": 4}], ids=["full", "lora"])
def test_reinforce_trains_on_two_processes(tmp_path, options):
    from policy.reinforce.launch import write_job as write_reinforce_job
    from rewardmodel.services import REWARD_MODEL_LOADER

    policy = build_policy(tmp_path / "policy")
    reward_model = build_tiny_backbone(tmp_path / "reward")
    prompts = [[{"role": "user", "content": text}] for text in ("hi", "hello", "a b", "c d", "e a", "hi ok")]
    config = ReinforceConfig(
        steps=2, prompts_per_step=2, samples_per_prompt=2, max_new_tokens=4, eval_every=2, eval_max_prompts=2,
        checkpoint_every=1, processes=2, **options,
    )  # fmt: skip
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    write_reinforce_job(
        work_dir,
        policy,
        reward_model,
        REWARD_MODEL_LOADER,
        prompts[:4],
        prompts[4:],
        config,
        tmp_path / "out",
        tmp_path / "resume.pt",
    )
    logs, samples = {}, []
    result = launch_torchrun(
        "policy.reinforce.launch",
        work_dir,
        2,
        on_log=logs.__setitem__,
        on_samples=lambda step, rows: samples.extend(rows),
    )

    assert sorted(logs) == [1, 2] and result["steps"] == 2
    assert (tmp_path / "out" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "out" / "checkpoint-1").is_dir()
    assert (tmp_path / "out" / "final" / "adapter").is_dir() == bool(options)  # DDP over the LoRA model
    train_samples = [s for s in samples if s["kind"] == "train"]
    assert len(train_samples) == 2 * 2 * 2  # both ranks' samples of both steps: 2 prompts x 2 samples a step
    assert len(result["eval_samples"]) == 2


def test_fsdp_on_two_processes_follows_the_one_process_run_and_saves_the_same_model(tmp_path, backbone):
    """FSDP2 shards the tiny BERT over 2 gloo ranks: the loss curve is the 1-process one, and rank 0 saves the full
    weights, which load by path and score as the 1-process model does."""
    pairs = preference_pairs()
    one_logs: dict[int, dict] = {}
    one = train_reward_model(
        pairs, RewardTrainConfig(backbone=backbone, **COMPARED), tmp_path / "one", on_log=one_logs.__setitem__
    )
    two_logs: dict[int, dict] = {}
    two, output_dir = launch_reward(
        tmp_path,
        pairs,
        RewardTrainConfig(backbone=backbone, processes=2, strategy="fsdp", **COMPARED),
        on_log=two_logs.__setitem__,
    )

    assert sorted(two_logs) == sorted(one_logs) == list(range(1, one["steps"] + 1))
    differences = [abs(two_logs[step]["loss"] - one_logs[step]["loss"]) for step in one_logs]
    print(
        f"loss, 1 process vs 2 FSDP processes, max |difference| over {len(differences)} steps: {max(differences):.2e}"
    )
    assert max(differences) < LOSS_TOLERANCE
    for step in one_logs:
        assert two_logs[step]["accuracy"] == one_logs[step]["accuracy"]
    assert two["eval_accuracy"] == one["eval_accuracy"]
    assert abs(two["eval_loss"] - one["eval_loss"]) < LOSS_TOLERANCE
    assert sorted(p.name for p in output_dir.iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    saved_config = json.loads((output_dir / "config.json").read_text())
    assert saved_config["architectures"] == json.loads((tmp_path / "one" / "config.json").read_text())["architectures"]
    one_scores = evaluate_pairs(load_reward_model(str(tmp_path / "one")), pairs)
    two_scores = evaluate_pairs(load_reward_model(str(output_dir)), pairs)
    assert two_scores["accuracy"] == one_scores["accuracy"]
    assert two_scores["loss"] == pytest.approx(one_scores["loss"], abs=LOSS_TOLERANCE)
    assert two_scores["mean_margin"] == pytest.approx(one_scores["mean_margin"], abs=LOSS_TOLERANCE)


def test_an_fsdp_run_stopped_after_a_checkpoint_resumes_to_the_same_model(tmp_path, backbone):
    """The resumable checkpoint of a sharded run holds the gathered weights and optimizer state; a new launch
    shards them again and ends where an uninterrupted run ends."""
    pairs = preference_pairs()
    options = {**COMPARED, "checkpoint_every": 2}
    config = RewardTrainConfig(backbone=backbone, processes=2, strategy="fsdp", **options)
    whole_logs: dict[int, dict] = {}
    whole = train_reward_model(
        pairs, RewardTrainConfig(backbone=backbone, **options), tmp_path / "whole", on_log=whole_logs.__setitem__
    )
    work_dir, output_dir, resume = tmp_path / "work", tmp_path / "model", tmp_path / "resume.pt"
    write_job(work_dir, pairs, config, output_dir, resume_path=resume)
    steps: list[int] = []
    with pytest.raises(TrainingStopped):
        launch_torchrun(
            "rewardmodel.train.launch",
            work_dir,
            2,
            on_progress=lambda step, total, phase: steps.append(step),
            should_stop=lambda: bool(steps) and steps[-1] >= 3,
        )
    assert resume.is_file() and json.loads(resume.with_suffix(".json").read_text())["step"] >= 2
    logs: dict[int, dict] = {}
    resumed = launch_torchrun("rewardmodel.train.launch", work_dir, 2, on_log=logs.__setitem__)

    assert resumed["steps"] == whole["steps"]
    assert min(logs) > 1  # it went on from the checkpoint, not from the start
    assert abs(logs[whole["steps"]]["loss"] - whole_logs[whole["steps"]]["loss"]) < LOSS_TOLERANCE
    assert resumed["eval_accuracy"] == whole["eval_accuracy"]
    assert abs(resumed["eval_loss"] - whole["eval_loss"]) < LOSS_TOLERANCE


def test_sft_on_two_processes_follows_the_one_process_loss_curve(tmp_path):
    """Dialogues of different lengths, 3 a batch (the ranks take 2 and 1, each padded to its own longest): each
    rank's loss is over the whole batch's assistant tokens, so the sum is the 1-process loss."""
    from policy.reinforce import SFTConfig, train_sft
    from policy.reinforce.sft_launch import write_job as write_sft_job

    base = build_policy(tmp_path / "base", chat_template=CHAT_TEMPLATE)
    words = ("hello sure", "ok c", "a b hi", "sure", "c d e a b")
    dialogues = [
        [{"role": "user", "content": words[n % 5]}, {"role": "assistant", "content": " ".join([words[n % 3]] * n)}]
        for n in range(1, 8)
    ]
    options = {"epochs": 2, "batch_size": 3, "learning_rate": 1e-2, "checkpoint_every": 0}
    one_logs: dict[int, dict] = {}
    one = train_sft(base, dialogues, SFTConfig(**options), tmp_path / "one", on_log=one_logs.__setitem__)
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    write_sft_job(work_dir, base, dialogues, SFTConfig(processes=2, **options), tmp_path / "two")
    two_logs: dict[int, dict] = {}
    two = launch_torchrun("policy.reinforce.sft_launch", work_dir, 2, on_log=two_logs.__setitem__)

    assert sorted(two_logs) == sorted(one_logs) == list(range(1, 7)) and two["steps"] == one["steps"] == 6
    differences = [abs(two_logs[step]["loss"] - one_logs[step]["loss"]) for step in one_logs]
    print(f"SFT loss, 1 vs 2 processes, max |difference| over {len(differences)} steps: {max(differences):.2e}")
    assert max(differences) < LOSS_TOLERANCE
    assert two_logs[6]["grad_norm"] == pytest.approx(one_logs[6]["grad_norm"], rel=1e-4)
    assert sorted(p.name for p in Path(two["model_path"]).iterdir()) == sorted(
        p.name for p in Path(one["model_path"]).iterdir()
    )


def test_the_configs_refuse_what_the_processes_cannot_do():
    assert RewardTrainConfig(processes=2, strategy="fsdp").strategy == "fsdp"
    with pytest.raises(OptionError, match="fsdp is not available for REINFORCE") as refused:
        ReinforceConfig(prompts_per_step=2, processes=2, strategy="fsdp")
    assert refused.value.name == "strategy"
    with pytest.raises(OptionError, match="strategy must be one of ddp, fsdp"):
        RewardTrainConfig(processes=2, strategy="zero3")
    with pytest.raises(OptionError, match="multiple of processes"):
        ReinforceConfig(prompts_per_step=3, processes=2)
    with pytest.raises(OptionError, match="processes"):
        RewardTrainConfig(processes=65)


def process_alive(pid: int) -> bool:
    """os.kill(pid, 0), not counting zombies (dead, waiting for their parent to read the exit code)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def launched_processes_of(work_dir: Path) -> list[int]:
    """Live processes whose command line names the work dir (torchrun and its ranks): what pgrep -f would find."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if str(work_dir).encode() in (entry / "cmdline").read_bytes() and process_alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
