"""budget.loss_chunk_size: the methods that support it give the same loss values and gradients from
the LM head's inputs in chunks as from the full logits, and the rest refuse it in the recipe check."""

import pytest
import torch

from distillbench.core.errors import UserInputError
from distillbench.kinds.text_lm.logps import sequence_logps
from distillbench.methods.llm.distillm import DistiLLM
from distillbench.methods.llm.gkd import GKD
from distillbench.methods.llm.kd import KD
from distillbench.methods.llm.rkl import RKL
from distillbench.methods.llm.sft import SFT
from distillbench.methods.llm.tvd import TVD

VOCAB = 50


def tiny_llama(seed=0, **config):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    settings = dict(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                    num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    return LlamaForCausalLM(LlamaConfig(**{**settings, **config})).double()


def sft_batch(prefix="", seed=1):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (3, 11), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, -3:] = 0  # padding on one row
    labels = ids.clone()
    labels[:, :4] = -100  # the prompt
    labels[mask == 0] = -100
    return {f"{prefix}input_ids": ids, f"{prefix}attention_mask": mask, f"{prefix}labels": labels}


def loss_and_grads(method, batch):
    student = tiny_llama()
    total = sum(method.loss(student, batch).values())
    grads = torch.autograd.grad(total, [p for p in student.parameters()])
    return total.detach(), grads


@pytest.mark.parametrize("method", [SFT(), KD(temperature=2.0, ce_weight=0.5), RKL(temperature=1.5), TVD(),
                                    GKD(beta=0.3), GKD(beta=0.0), DistiLLM(divergence="skew_forward"),
                                    DistiLLM(divergence="skew_reverse")], ids=repr)
def test_token_losses_equal_with_and_without_chunks(method):
    assert method.supports_chunked_loss
    batch = sft_batch()
    batch["teacher_logits"] = 3 * torch.randn(3, 10, VOCAB, generator=torch.Generator().manual_seed(5),
                                              dtype=torch.float64)
    full_value, full_grads = loss_and_grads(method, batch)
    chunked_value, chunked_grads = loss_and_grads(method, {**batch, "chunk_size": 4})
    assert torch.allclose(full_value, chunked_value, rtol=1e-10, atol=1e-12)
    for full, chunked in zip(full_grads, chunked_grads):
        assert torch.allclose(full, chunked, rtol=1e-8, atol=1e-10)


def test_sequence_logps_equal_with_and_without_chunks():
    batch = {**sft_batch("chosen_"), **sft_batch("rejected_", seed=2)}
    for average in (False, True):
        model = tiny_llama()
        full = sequence_logps(model, batch, "rejected", average=average)
        full_grads = torch.autograd.grad(full.sum(), list(model.parameters()))
        chunked = sequence_logps(model, {**batch, "chunk_size": 3}, "rejected", average=average)
        chunked_grads = torch.autograd.grad(chunked.sum(), list(model.parameters()))
        assert torch.allclose(full, chunked, rtol=1e-10)
        for a, b in zip(full_grads, chunked_grads):
            assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)


def test_a_model_that_transforms_its_logits_refuses_chunks():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    model = Gemma2ForCausalLM(Gemma2Config(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                           num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                                           final_logit_softcapping=30.0))
    with pytest.raises(UserInputError, match="final_logit_softcapping"):
        KD().loss(model, {**sft_batch(), "chunk_size": 4, "teacher_logits": torch.zeros(3, 10, VOCAB)})


def test_the_recipe_check_names_methods_that_cannot_chunk():
    from distillbench.core.recipe import parse_recipe

    raw = {"name": "chunked", "kind": "text-lm", "teacher": "pocket:teacher-sft", "student": "pocket:student-init",
           "data": {"source": "pocket:math", "size": 8},
           "budget": {"steps": 1, "batch_size": 2, "learning_rate": 1e-3, "max_length": 64, "loss_chunk_size": 16},
           "methods": ["kd", "dckd"], "benchmarks": [{"name": "pocket-math", "n": 2}]}
    with pytest.raises(UserInputError) as info:
        parse_recipe(raw)
    problems = str(info.value)
    assert "methods[1]: dckd computes its loss from the full logits" in problems and "methods[0]" not in problems
    parse_recipe({**raw, "methods": ["kd", "dpo"], "data": {**raw["data"], "preferences": "pocket:math-preference"}})


def test_gkd_scores_the_raw_distributions_and_samples_at_its_temperature():
    # TRL's GKDTrainer calls generalized_jsd_loss without a temperature; GKDConfig's 0.9 is for sampling
    from distillbench.methods.llm.gkd import generalized_jsd_loss

    method = GKD()
    batch = sft_batch()
    batch["teacher_logits"] = 3 * torch.randn(3, 10, VOCAB, generator=torch.Generator().manual_seed(5),
                                              dtype=torch.float64)
    student = tiny_llama()
    logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    expected = generalized_jsd_loss(logits, batch["teacher_logits"], batch["labels"][:, 1:], beta=0.5)
    assert torch.allclose(method.loss(student, batch)["jsd"], expected)
    assert method.sample_temperature == 0.9
