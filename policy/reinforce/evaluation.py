"""Held-out comparison of a policy's answers with the reference's, by one or more scorers (Django-free).

Any policy trainer (REINFORCE, DPO) calls `compare_with_reference` with the answers it sampled and its scorers:
the reward model it trained against ("reward") and, when the run names one, an independent judge ("judge").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rlhf.stats import compare_scores

ScoreFn = Callable[[list[list[dict]], list[str]], list[float]]
# Metric names per scorer: the reward model's keep the names the pages and the API always had.
METRIC_PREFIX = {"reward": "eval", "judge": "eval_judge"}


def score_answers(scorer: ScoreFn, prompts: list[list[dict]], responses: list[str]) -> list[float]:
    scores = [float(value) for value in scorer(prompts, responses)]
    if len(scores) != len(responses):
        raise ValueError(f"the scorer returned {len(scores)} scores for {len(responses)} responses")
    return scores


def compare_with_reference(
    prompts: list[list[dict]],
    policy_responses: list[str],
    reference_responses: list[str],
    scorers: Mapping[str, ScoreFn],
    *,
    policy_scores: Mapping[str, list[float]] | None = None,
    reference_scores: Mapping[str, list[float]] | None = None,
) -> tuple[dict, dict[str, list[float]], dict[str, list[float]]]:
    """Score both answers to every held-out prompt with every scorer and compare them prompt by prompt.

    Returns (metrics, policy scores, reference scores), the scores by scorer name. Scores already known (the
    reference's never change, the policy's reward-model scores may come with its sampling) are passed in and not
    recomputed. Per scorer `name` with prefix p (`METRIC_PREFIX`): p_reward_policy, p_reward_reference, p_win_rate
    and p_win_wins, p_win_n, p_win_low, p_win_high (the 95 % Wilson interval; a tie counts half a win).
    """
    if not (len(prompts) == len(policy_responses) == len(reference_responses)):
        raise ValueError("prompts, policy and reference answers must be as many")
    known_policy, known_reference = dict(policy_scores or {}), dict(reference_scores or {})
    metrics: dict = {"eval_prompts": len(prompts)}
    for name, scorer in scorers.items():
        prefix = METRIC_PREFIX.get(name, f"eval_{name}")
        if name not in known_policy:
            known_policy[name] = score_answers(scorer, prompts, policy_responses)
        if name not in known_reference:
            known_reference[name] = score_answers(scorer, prompts, reference_responses)
        mine, theirs = known_policy[name], known_reference[name]
        rate = compare_scores(mine, theirs)
        metrics.update(
            {
                f"{prefix}_reward_policy": sum(mine) / len(mine),
                f"{prefix}_reward_reference": sum(theirs) / len(theirs),
                f"{prefix}_win_rate": rate.rate,
                **rate.as_metrics(f"{prefix}_win"),
            }
        )
    return metrics, known_policy, known_reference
