"""REINFORCE end to end on a tiny policy built in the test, with a scripted reward: the count of "a" in the answer."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from policy.reinforce import ReinforceConfig, TrainingStopped, generate_responses, train_reinforce
from policy.reinforce.loading import load_policy
from policy.reinforce.sampling import encode_prompts, eos_token_ids, make_generator, response_logprobs, sample

PROMPTS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "user", "content": "hello b c"}],
    [{"role": "system", "content": "e"}, {"role": "user", "content": "d d"}],
    [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "sure"}, {"role": "user", "content": "b"}],
]
EVAL_PROMPTS = [[{"role": "user", "content": "c"}], [{"role": "user", "content": "hello"}]] + PROMPTS[:2]


def count_a(prompts: list[list[dict]], responses: list[str]) -> list[float]:
    assert len(prompts) == len(responses)
    return [float(response.split().count("a")) for response in responses]


def _config(**overrides) -> ReinforceConfig:
    settings = dict(
        steps=20,
        prompts_per_step=2,
        samples_per_prompt=4,
        max_new_tokens=5,
        learning_rate=1e-2,
        kl_coef=0.0,
        eval_every=20,
        checkpoint_every=100,
        seed=0,
    )
    return ReinforceConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def unpenalised_run(tiny_policy, tmp_path_factory):
    logs = []
    result = train_reinforce(
        tiny_policy,
        count_a,
        PROMPTS,
        EVAL_PROMPTS,
        _config(),
        tmp_path_factory.mktemp("run"),
        on_log=lambda step, metrics: logs.append(metrics),
    )
    return result, logs


def test_sampler_masks_stop_at_eos_and_left_padding_does_not_change_logprobs(tiny_policy):
    model, tokenizer = load_policy(tiny_policy)
    prompts = [PROMPTS[0], PROMPTS[3]]  # different lengths, so the first row is left-padded
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, 64, torch.device("cpu"))
    assert prompt_mask[0].sum() < prompt_mask[1].sum() and prompt_mask[0, 0] == 0
    eos = eos_token_ids(model, tokenizer)
    rollout = sample(
        model,
        prompt_ids,
        prompt_mask,
        max_new_tokens=30,
        temperature=1.0,
        top_p=1.0,
        eos_ids=eos,
        pad_token_id=tokenizer.pad_token_id,
        generator=make_generator(torch.device("cpu"), 3),
    )
    for row in range(2):
        ids, mask = rollout.response_ids[row].tolist(), rollout.response_mask[row].tolist()
        if rollout.ended[row]:
            end = next(i for i, token in enumerate(ids) if token in eos)
            # The EOS is generated and counts; everything after it is padding and does not.
            assert mask == [True] * (end + 1) + [False] * (len(ids) - end - 1)
        else:
            assert all(mask)
    assert rollout.ended.any(), "seed 3 should end at least one of the two responses"
    batched = response_logprobs(model, rollout, temperature=1.0)
    for row in range(2):
        keep = prompt_mask[row].bool()
        alone = type(rollout)(
            rollout.prompt_ids[row : row + 1, keep],
            rollout.prompt_mask[row : row + 1, keep],
            rollout.response_ids[row : row + 1],
            rollout.response_mask[row : row + 1],
            rollout.ended[row : row + 1],
        )
        single = response_logprobs(model, alone, temperature=1.0)[0]
        mask = rollout.response_mask[row]
        assert torch.allclose(batched[row][mask], single[mask], atol=1e-5)


def test_generate_responses_is_deterministic_for_a_seed(tiny_policy):
    first = generate_responses(tiny_policy, None, PROMPTS, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=1)
    again = generate_responses(tiny_policy, None, PROMPTS, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=1)
    other = generate_responses(tiny_policy, None, PROMPTS, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=2)
    assert first == again and first != other and len(first) == 4


def test_scripted_reward_rises_clearly_within_twenty_steps(unpenalised_run):
    result, logs = unpenalised_run
    assert logs[0]["kl"] == 0.0  # the policy is still the reference when the first batch is scored
    assert [m["step"] for m in logs] == list(range(1, 21))
    early = sum(m["reward_mean"] for m in logs[:3]) / 3
    late = sum(m["reward_mean"] for m in logs[-3:]) / 3
    assert early < 1.0 and late > 3.5
    assert result["reward_policy"] > result["reward_reference"] + 2.5
    assert result["win_rate"] >= 0.75
    assert result["kl"] > 3.0  # unconstrained, it wanders far from the reference


@pytest.mark.parametrize("kl_mode", ["reward", "loss"])
def test_large_kl_coefficient_keeps_policy_near_reference(tiny_policy, tmp_path, unpenalised_run, kl_mode):
    result = train_reinforce(
        tiny_policy, count_a, PROMPTS, EVAL_PROMPTS, _config(kl_coef=50.0, kl_mode=kl_mode), tmp_path
    )
    unpenalised, _ = unpenalised_run
    assert abs(result["kl"]) < 0.5 < unpenalised["kl"]
    assert result["reward_policy"] < unpenalised["reward_policy"] - 2.0


def test_run_writes_checkpoints_samples_and_a_loadable_final_model(tiny_policy, tmp_path):
    logs, samples = [], []
    config = _config(
        steps=4, eval_every=2, checkpoint_every=2, baseline="mean", whiten_rewards=True, no_eos_penalty=1.0
    )
    progress = []
    result = train_reinforce(
        tiny_policy,
        count_a,
        PROMPTS,
        EVAL_PROMPTS,
        config,
        tmp_path,
        on_log=lambda step, metrics: logs.append(metrics),
        on_samples=lambda step, batch: samples.append((step, batch)),
        on_progress=lambda *report: progress.append(report),
    )
    assert progress[0] == (0, 4, "loading")
    assert [step for step, _, phase, *_ in progress if phase == "training"] == [0, 1, 2, 2, 2, 3, 4, 4]
    assert [(step, phase) for step, _, phase, *_ in progress if phase not in ("training", "evaluating")][1:] == [
        (2, "saving"),
        (4, "saving"),
    ]
    # Evaluation counts its answers: at step 2 the reference's and the policy's (4 prompts each, one call each); at
    # the last step the policy's and then n=4 more per prompt (2 prompts per call).
    evaluating = [(step, counts) for step, _, phase, *counts in progress if phase == "evaluating"]
    assert evaluating == [
        (2, [0, 8]),
        (2, [4, 8]),
        (2, [8, 8]),
        (4, [0, 20]),
        (4, [4, 20]),
        (4, [12, 20]),
        (4, [20, 20]),
    ]
    assert config.evaluation_answers_from(1, len(EVAL_PROMPTS)) == 8 + 20
    assert config.evaluation_answers_from(3, len(EVAL_PROMPTS)) == 20
    assert config.evaluation_answers_from(5, len(EVAL_PROMPTS)) == 0
    assert (tmp_path / "checkpoint-2" / "config.json").exists()
    assert json.loads((tmp_path / "checkpoint-2" / "training_state.json").read_text())["step"] == 2
    assert result["model_path"] == str(tmp_path / "final")
    AutoModelForCausalLM.from_pretrained(result["model_path"])
    load_policy(result["model_path"])  # tokenizer saved beside it
    assert not list(tmp_path.glob(".*tmp*"))

    for key in ("step", "total_steps", "reward_mean", "kl", "response_length", "loss"):
        assert key in logs[0]
    eval_keys = {"eval_reward_policy", "eval_reward_reference", "eval_win_rate", "eval_kl", "eval_length"}
    assert [sorted(eval_keys & m.keys()) == sorted(eval_keys) for m in logs] == [False, True, False, True]
    assert logs[1]["eval_kl"] != 0  # two updates moved the policy (a sampled estimate: either sign)

    kinds = [(step, batch[0]["kind"], len(batch)) for step, batch in samples]
    assert kinds[:4] == [(1, "train", 8), (2, "train", 8), (2, "reference", 4), (2, "eval", 4)]
    assert kinds[-1] == (4, "eval", 4)
    assert set(samples[0][1][0]) == {"prompt", "response", "reward", "kind"}

    for key in ("reward_policy", "reward_reference", "win_rate", "kl"):
        assert isinstance(result[key], float)
    assert len(result["eval_samples"]) == 4
    first = result["eval_samples"][0]
    assert first["prompt"] == EVAL_PROMPTS[0]
    assert first["policy_reward"] == first["policy_response"].split().count("a")
    assert set(first) == {
        "prompt",
        "policy_response",
        "reference_response",
        "policy_reward",
        "reference_reward",
        "policy_responses",  # n answers of the final policy, for a ranking batch
        "policy_rewards",
    }
    assert len(first["policy_responses"]) == len(first["policy_rewards"]) == config.samples_per_prompt
    assert first["policy_rewards"] == [response.split().count("a") for response in first["policy_responses"]]


def test_same_seed_gives_the_same_run(tiny_policy, tmp_path):
    runs = []
    for name in ("one", "two"):
        logs = []
        train_reinforce(
            tiny_policy,
            count_a,
            PROMPTS,
            EVAL_PROMPTS,
            _config(steps=3, eval_every=3),
            tmp_path / name,
            on_log=lambda step, metrics, logs=logs: logs.append((metrics["reward_mean"], metrics["loss"])),
        )
        runs.append(logs)
    assert runs[0] == runs[1]


def test_should_stop_raises_training_stopped_without_final_model(tiny_policy, tmp_path):
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(TrainingStopped, match="stopped at step 2 of 20"):
        train_reinforce(tiny_policy, count_a, PROMPTS, EVAL_PROMPTS, _config(), tmp_path, should_stop=should_stop)
    assert not (tmp_path / "final").exists()


def test_bad_prompt_is_refused_naming_it(tiny_policy, tmp_path):
    bad = PROMPTS + [[{"role": "bot", "content": "hi"}]]
    with pytest.raises(ValueError, match=r"prompts\[4\]: message 1: role must be one of .*, got 'bot'"):
        train_reinforce(tiny_policy, count_a, bad, EVAL_PROMPTS, _config(), tmp_path)
    with pytest.raises(ValueError, match="baseline must be one of"):
        _config(baseline="median")


def test_an_independent_judge_scores_every_evaluation_with_counts_and_intervals(tiny_policy, tmp_path):
    """The judge (here: one that dislikes "a", the opposite of the reward) is logged beside the reward model at every
    evaluation, with its count and interval; the reported KL is never negative."""
    logs = []

    def count_not_a(prompts: list[list[dict]], responses: list[str]) -> list[float]:
        return [-value for value in count_a(prompts, responses)]

    result = train_reinforce(
        tiny_policy,
        count_a,
        PROMPTS,
        EVAL_PROMPTS,
        _config(steps=4, eval_every=2, eval_max_prompts=3),
        tmp_path,
        on_log=lambda step, metrics: logs.append(metrics),
        judge_fn=count_not_a,
    )
    evaluations = [m for m in logs if "eval_judge_win_rate" in m]
    assert [m["step"] for m in evaluations] == [2, 4]
    for metrics in evaluations:
        assert metrics["eval_prompts"] == metrics["eval_win_n"] == metrics["eval_judge_win_n"] == 3
        assert metrics["eval_judge_win_low"] <= metrics["eval_judge_win_rate"] <= metrics["eval_judge_win_high"]
        # Ties count half on both sides; otherwise the judge disagrees with the reward model on every answer.
        assert metrics["eval_win_wins"] + metrics["eval_judge_win_wins"] == pytest.approx(3)
    assert all(m["kl"] >= 0 for m in logs) and all(m["eval_kl"] >= 0 for m in evaluations)
    assert (result["judge_win_n"], result["win_n"], result["eval_prompts"]) == (3, 3, 3)
    assert result["win_low"] <= result["win_rate"] <= result["win_high"]
