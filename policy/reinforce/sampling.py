"""Batched sampling with the KV cache, and per-token log-probabilities of sampled responses."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from rlhf.devices import autocast_for

from .loading import format_prompt, load_policy, prepare_tokenizer


@dataclass
class Rollout:
    prompt_ids: torch.Tensor  # [B, L] left-padded
    prompt_mask: torch.Tensor  # [B, L]
    response_ids: torch.Tensor  # [B, T] padded after the first EOS
    response_mask: torch.Tensor  # [B, T] true on generated tokens, EOS included
    ended: torch.Tensor  # [B] whether the response reached EOS
    samples_per_prompt: int = 1  # rows come in groups of this many samples of the same prompt

    @property
    def sequences(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.response_mask.to(self.prompt_mask.dtype)], dim=1)

    @property
    def lengths(self) -> torch.Tensor:
        return self.response_mask.sum(dim=1)


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    ids.discard(None)
    if not ids:
        raise ValueError("the tokenizer has no EOS token: responses could never end")
    return sorted(ids)


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: list[list[dict]], max_prompt_tokens: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chat-formatted, left-padded prompt ids; a prompt over max_prompt_tokens keeps its last tokens."""
    texts = [format_prompt(tokenizer, messages) for messages in prompts]
    # Chat templates carry their own special tokens; only the plain format wants the tokenizer's BOS.
    add_special = not getattr(tokenizer, "chat_template", None)
    # verbose=False: a prompt over the model's maximum is expected and cut here, not a mistake to warn about.
    encoded = [
        tokenizer(text, add_special_tokens=add_special, verbose=False)["input_ids"][-max_prompt_tokens:]
        for text in texts
    ]
    width = max(len(ids) for ids in encoded)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, ids in enumerate(encoded):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    # Left padding: the first real token is position 0 in every row.
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def _pick_tokens(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(dim=-1)
        # Drop a token once the tokens before it already cover top_p; the most likely token always stays.
        drop = (sorted_probs.cumsum(dim=-1) - sorted_probs) > top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def sample(
    model: PreTrainedModel,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    eos_ids: list[int],
    pad_token_id: int,
    generator: torch.Generator,
    samples_per_prompt: int = 1,
) -> Rollout:
    """Sample samples_per_prompt responses per prompt row with a KV cache (rows of the result are grouped prompt by
    prompt); a row stops at its first EOS, the batch when all have."""
    device = prompt_ids.device
    cache = DynamicCache(config=model.config)
    with autocast_for(device):
        positions = _positions(prompt_mask)
        # Each prompt is read once; its cache and last logits are then copied for its n samples.
        out = model(
            input_ids=prompt_ids,
            attention_mask=prompt_mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        if samples_per_prompt > 1:
            cache.batch_repeat_interleave(samples_per_prompt)
            out.logits = out.logits.repeat_interleave(samples_per_prompt, dim=0)
            prompt_ids = prompt_ids.repeat_interleave(samples_per_prompt, dim=0)
            prompt_mask = prompt_mask.repeat_interleave(samples_per_prompt, dim=0)
            positions = positions.repeat_interleave(samples_per_prompt, dim=0)
        batch = prompt_ids.shape[0]
        next_position = positions[:, -1:] + 1
        eos = torch.tensor(eos_ids, device=device)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        tokens = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
        generated = torch.zeros((batch, max_new_tokens), dtype=torch.bool, device=device)
        attention_mask = prompt_mask
        length = max_new_tokens
        # Rows still sampling (indices into the batch): a row that ended leaves the batch and its cache, so no
        # compute is spent on it.
        active = torch.arange(batch, device=device)
        for step in range(max_new_tokens):
            token = _pick_tokens(out.logits[:, -1, :].float(), temperature, top_p, generator)
            tokens[active, step] = token
            generated[active, step] = True
            ended = torch.isin(token, eos)
            finished[active[ended]] = True
            if step == max_new_tokens - 1 or bool(finished.all()):
                length = step + 1
                break
            if bool(ended.any()):
                keep = (~ended).nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                active, token = active[keep], token[keep]
                attention_mask, next_position = attention_mask[keep], next_position[keep]
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(active), 1))], dim=1)
            out = model(
                input_ids=token[:, None],
                attention_mask=attention_mask,
                position_ids=next_position,
                cache=cache,
                use_cache=True,
            )
            next_position = next_position + 1
    return Rollout(prompt_ids, prompt_mask, tokens[:, :length], generated[:, :length], finished, samples_per_prompt)


def _shared_prompt_logits(model: PreTrainedModel, rollout: Rollout) -> torch.Tensor:
    """The response positions' logits [B, T, V], each prompt read once for its n samples (as the sampler does): the
    prompt's keys and values are computed once, repeated for its n rows (gradients flow back through the repeat),
    and only the response tokens run through the model again. A third of the tokens at 2 prompts x 4 samples of
    128 + 32 tokens."""
    n = rollout.samples_per_prompt
    prompt_ids, prompt_mask = rollout.prompt_ids[::n], rollout.prompt_mask[::n]
    cache = DynamicCache(config=model.config)
    out = model(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=_positions(prompt_mask),
        cache=cache,
        use_cache=True,
        logits_to_keep=1,  # the last prompt position predicts the first response token
    )
    logits = [out.logits[:, -1:, :].repeat_interleave(n, dim=0)]
    if rollout.response_ids.shape[1] > 1:
        cache.batch_repeat_interleave(n)
        attention_mask = rollout.attention_mask[:, :-1]  # the final response token predicts nothing
        out = model(
            input_ids=rollout.response_ids[:, :-1],
            attention_mask=attention_mask,
            position_ids=_positions(attention_mask)[:, prompt_ids.shape[1] :],
            cache=cache,
            use_cache=True,
        )
        logits.append(out.logits)
    return torch.cat(logits, dim=1)


def response_logprobs(model: PreTrainedModel, rollout: Rollout, temperature: float) -> torch.Tensor:
    """log p(x_j | prompt, x_<j) of each response token under model, [B, T]; gradients flow when enabled."""
    sequences = rollout.sequences
    attention_mask = rollout.attention_mask
    response_length = rollout.response_ids.shape[1]
    with autocast_for(sequences.device):
        # DDP wants one forward per backward: it reads the whole sequences in one pass.
        if rollout.samples_per_prompt > 1 and not isinstance(model, torch.nn.parallel.DistributedDataParallel):
            logits = _shared_prompt_logits(model, rollout)
        else:
            out = model(
                input_ids=sequences,
                attention_mask=attention_mask,
                position_ids=_positions(attention_mask),
                use_cache=False,
                # The last prompt position predicts the first response token; the final position predicts nothing.
                logits_to_keep=response_length + 1,
            )
            logits = out.logits[:, :-1, :]
    logits = logits.float()
    if temperature > 0:
        # The gradient is of the distribution we sampled from, so the same temperature applies.
        logits = logits / temperature
    picked = logits.gather(-1, rollout.response_ids.unsqueeze(-1)).squeeze(-1)
    return picked - logits.logsumexp(dim=-1)


def decode_responses(tokenizer: PreTrainedTokenizerBase, rollout: Rollout) -> list[str]:
    responses = []
    for ids, mask in zip(rollout.response_ids.tolist(), rollout.response_mask.tolist(), strict=True):
        kept = [token for token, keep in zip(ids, mask, strict=True) if keep]
        responses.append(tokenizer.decode(kept, skip_special_tokens=True).strip())
    return responses


def rollout_prompts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[dict]],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    max_prompt_tokens: int,
    generator: torch.Generator,
    samples_per_prompt: int = 1,
) -> Rollout:
    """samples_per_prompt responses to each prompt, consecutive in the result."""
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, max_prompt_tokens, device)
    return sample(
        model,
        prompt_ids,
        prompt_mask,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        eos_ids=eos_token_ids(model, tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        generator=generator,
        samples_per_prompt=samples_per_prompt,
    )


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def generate_responses(
    model_path_or_model: str | os.PathLike | PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    prompts: list[list[dict]],
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    max_prompt_tokens: int = 512,
) -> list[str]:
    """One response per prompt (chat messages), deterministic for a seed."""
    if isinstance(model_path_or_model, PreTrainedModel):
        if tokenizer is None:
            raise ValueError("a tokenizer is needed with a model object")
        model = model_path_or_model
    else:
        model, loaded_tokenizer = load_policy(model_path_or_model)
        tokenizer = tokenizer or loaded_tokenizer
    prepare_tokenizer(tokenizer)
    was_training = model.training
    model.eval()
    generator = make_generator(next(model.parameters()).device, seed)
    responses: list[str] = []
    for start in range(0, len(prompts), batch_size):
        rollout = rollout_prompts(
            model,
            tokenizer,
            prompts[start : start + batch_size],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            max_prompt_tokens=max_prompt_tokens,
            generator=generator,
        )
        responses.extend(decode_responses(tokenizer, rollout))
    model.train(was_training)
    return responses
