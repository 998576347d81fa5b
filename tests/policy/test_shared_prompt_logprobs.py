"""The update reads each prompt once for its n samples: same log-probabilities and gradients as reading every
sampled sequence whole."""

from __future__ import annotations

import dataclasses

import torch

from policy.reinforce.loading import load_policy
from policy.reinforce.sampling import make_generator, response_logprobs, rollout_prompts
from tests.policy.test_reinforce_train import PROMPTS


def test_prompt_read_once_gives_the_whole_sequence_logprobs_and_gradients(tiny_policy):
    model, tokenizer = load_policy(tiny_policy, dtype=torch.float32)
    model.eval()
    # Prompts of different lengths (left padding), answers of different lengths (padding after EOS).
    rollout = rollout_prompts(
        model, tokenizer, [PROMPTS[0], PROMPTS[3]], max_new_tokens=8, temperature=1.0, top_p=1.0,
        max_prompt_tokens=64, generator=make_generator(torch.device("cpu"), 5), samples_per_prompt=3,
    )  # fmt: skip
    assert rollout.samples_per_prompt == 3 and rollout.prompt_mask[0, 0] == 0
    whole_rows = dataclasses.replace(rollout, samples_per_prompt=1)  # read as 6 unrelated sequences
    results = []
    for each in (rollout, whole_rows):
        model.zero_grad()
        logprobs = response_logprobs(model, each, 0.7)
        (logprobs * each.response_mask).sum().backward()
        grads = [parameter.grad.clone() for parameter in model.parameters()]
        results.append((logprobs.detach() * each.response_mask, grads))
    (shared, shared_grads), (whole, whole_grads) = results
    assert torch.allclose(shared, whole, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(shared_grads, whole_grads, strict=True))


def test_a_row_that_ended_leaves_the_batch(tiny_policy):
    model, tokenizer = load_policy(tiny_policy, dtype=torch.float32)
    rows_per_call = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: rows_per_call.append(len(kwargs["input_ids"])), with_kwargs=True
    )
    rollout = rollout_prompts(
        model, tokenizer, PROMPTS, max_new_tokens=30, temperature=1.0, top_p=1.0, max_prompt_tokens=64,
        generator=make_generator(torch.device("cpu"), 0), samples_per_prompt=2,
    )  # fmt: skip
    lengths = rollout.response_mask.sum(dim=1)
    assert rollout.ended.any() and lengths.min() < lengths.max()  # rows ended at different steps
    # The prompts read once, then one call per later token with only the rows still sampling it.
    still_sampling = [int((lengths > step).sum()) for step in range(1, rollout.response_ids.shape[1])]
    assert rows_per_call == [len(PROMPTS), *still_sampling]
