"""The optional vLLM generation backend, with a stand-in `vllm` module (no GPU or vllm here): what the
engine is given, that scoring goes through it for the model under evaluation only, and that its
outputs are keyed apart from transformers' outputs."""

import json
import sys
import types
from pathlib import Path

import pytest

from distillbench.kinds.text_lm import vllm_backend
from distillbench.cli.main import main
from distillbench.kinds.text_lm.generation import generate_responses, serving
from distillbench.kinds.text_lm.models import load_causal_lm


def fake_vllm(engines: list):
    """A `vllm` module whose LLM loads the weights with transformers and decodes greedily, one prompt at a time."""
    module = types.ModuleType("vllm")

    class SamplingParams:
        def __init__(self, temperature, max_tokens):
            self.temperature, self.max_tokens = temperature, max_tokens

    class LLM:
        def __init__(self, model, tokenizer, **options):
            self.location, self.options, self.prompts = model, {"tokenizer": tokenizer, **options}, []
            self.model, self.tokenizer = load_causal_lm(model)
            engines.append(self)

        def generate(self, prompts, params, use_tqdm=True):
            import torch

            assert params.temperature == 0.0 and not use_tqdm
            results = []
            for prompt in prompts:
                self.prompts.append(prompt["prompt_token_ids"])
                ids = torch.tensor([prompt["prompt_token_ids"]])
                generated = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                                max_new_tokens=params.max_tokens,
                                                pad_token_id=self.tokenizer.pad_token_id,
                                                eos_token_id=self.tokenizer.eos_token_id)
                completion = types.SimpleNamespace(token_ids=generated[0, ids.shape[1]:].tolist())
                results.append(types.SimpleNamespace(outputs=[completion]))
            return results

    module.LLM, module.SamplingParams = LLM, SamplingParams
    return module


@pytest.fixture
def engines(monkeypatch):
    created = []
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(created))
    return created


CONVERSATIONS = [[{"role": "user", "content": "What is 7 + 5?"}], [{"role": "user", "content": "Compute 12 * 3."}]]


def test_the_served_model_generates_through_the_engine_with_the_chat_template_ids(engines):
    from distillbench.core.models import resolve_path, parse_model_ref

    location = resolve_path(parse_model_ref("pocket:student-init"))
    model, tokenizer = load_causal_lm(location)
    other, _ = load_causal_lm(location)
    expected = generate_responses(model, tokenizer, CONVERSATIONS, max_new_tokens=12, batch_size=1)
    generator = vllm_backend.VLLMGenerator(location, model, dtype="bfloat16", gpu_memory_utilization=0.3, seed=4)
    with serving(generator):
        served = generate_responses(model, tokenizer, CONVERSATIONS, max_new_tokens=12, batch_size=2)
        generate_responses(other, tokenizer, CONVERSATIONS, max_new_tokens=4, batch_size=2)  # not served
    (engine,) = engines
    assert served == expected
    assert len(engine.prompts) == 2  # the other model generated with transformers
    assert engine.prompts[0] == list(tokenizer.apply_chat_template(CONVERSATIONS[0], add_generation_prompt=True,
                                                                   tokenize=True, return_dict=False))
    assert engine.options == {"tokenizer": location, "revision": None, "dtype": "bfloat16", "seed": 4,
                              "gpu_memory_utilization": 0.3, "trust_remote_code": False}


def outputs(out: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(out.glob("cells/*/outputs-pocket-math-*.jsonl")):
        found[path.parent.name.rsplit("-", 1)[0] + "/" + path.name] = [json.loads(line)["output"]
                                                                       for line in path.read_text().splitlines()]
    return found


def test_a_recipe_scores_with_vllm_keyed_apart_from_transformers(tiny_recipe, engines, monkeypatch):
    monkeypatch.setattr(vllm_backend, "check_available", lambda: None)
    recipe = tiny_recipe("[sft]")
    assert main(["run", str(recipe)]) == 0
    hf_outputs = outputs(recipe.parent / "out")
    recipe.write_text(recipe.read_text() + "generation: {backend: vllm, gpu_memory_utilization: 0.4}\n")
    assert main(["run", str(recipe)]) == 0
    locations = sorted(Path(engine.location).name for engine in engines)
    # one engine per cell: the references from their zoo directories, the trained student from its model/ folder
    assert len(engines) == 3 and "model" in locations
    both = outputs(recipe.parent / "out")
    vllm_outputs = {name: texts for name, texts in both.items() if name not in hf_outputs}
    assert len(vllm_outputs) == len(hf_outputs) == 3  # new evaluation keys; the transformers outputs stay
    # greedy one prompt at a time gives the same text as transformers' batches on this model
    hf_by_cell = {name.split("/")[0]: texts for name, texts in hf_outputs.items()}
    assert all(hf_by_cell[name.split("/")[0]] == texts for name, texts in vllm_outputs.items())


def test_vllm_without_the_package_is_refused_before_anything_runs(tiny_recipe, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    recipe = tiny_recipe("[sft]")
    recipe.write_text(recipe.read_text() + "generation: {backend: vllm}\n")
    assert main(["run", str(recipe)]) == 2
    assert "generation.backend: vllm needs the vllm package" in capsys.readouterr().err
    assert not (recipe.parent / "out" / "cells").exists()


def test_generation_options_are_checked():
    from distillbench.kinds.text_lm.kind import GenerationSpec

    with pytest.raises(ValueError):
        GenerationSpec(backend="tgi")
    with pytest.raises(ValueError):
        GenerationSpec(gpu_memory_utilization=1.5)
