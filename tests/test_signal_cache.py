"""The top-k teacher signal cache: exact at k = V, the remainder spread over the rest, one
teacher pass per training example for a whole run; and a fixed reference's log-probs, computed once."""

import json
from dataclasses import dataclass

import pytest
import torch

from distillbench.harness.cli import main
from distillbench.harness.data import collate, tokenize_preferences, tokenize_records
from distillbench.harness.models import load_causal_lm
from distillbench.harness.recipe import Budget
from distillbench.harness.signals import ReferenceLogps, SignalCache
from distillbench.harness.train import add_signals, train
from distillbench.methods.llm.dpo import DPO
from distillbench.pocket.math_world import generate


def _cache(tmp_path, k):
    teacher, tokenizer = load_causal_lm("pocket:teacher-sft")
    examples = tokenize_records(tokenizer, generate("train", 10), 96)
    return teacher, examples, SignalCache.build_or_load(tmp_path, teacher, "test-teacher", examples, k)


def _dense(teacher, examples, rows):
    batch = collate([examples[i] for i in rows], 0)
    logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    return torch.log_softmax(logits, -1), batch


def test_with_k_equal_to_the_vocabulary_the_cache_is_the_dense_distribution(tmp_path):
    teacher, examples, cache = _cache(tmp_path, k=10_000)
    rows = [3, 0, 7]
    dense, batch = _dense(teacher, examples, rows)
    cached = cache.teacher_logits(rows, "", batch["input_ids"].shape[1], "cpu")
    for row, index in enumerate(rows):
        length = len(examples[index]["input_ids"]) - 1
        assert torch.allclose(cached[row, :length], dense[row, :length], atol=2e-2)  # float16 storage


def test_top_k_keeps_the_k_largest_and_spreads_the_remainder(tmp_path):
    teacher, examples, cache = _cache(tmp_path, k=4)
    dense, batch = _dense(teacher, examples, [1])
    cached = cache.teacher_logits([1], "", batch["input_ids"].shape[1], "cpu")[0, :5]
    top = dense[0, :5].topk(4, -1)
    assert torch.allclose(cached.gather(-1, top.indices), top.values, atol=2e-2)
    assert torch.allclose(cached.exp().sum(-1), torch.ones(5), atol=1e-2)
    rest = cached.scatter(-1, top.indices, float("nan"))
    assert all(len(set(row[~row.isnan()].tolist())) == 1 for row in rest)  # one value for all other tokens
    assert cache.bytes_per_position() == 4 * (2 + 4)  # float16 log-prob and int32 token id


def test_a_run_with_top_k_makes_one_teacher_pass_per_example(tiny_recipe):
    recipe = tiny_recipe("[kd, rkl]")
    recipe.write_text(recipe.read_text().replace("checkpoint_every: 1}", "checkpoint_every: 1, teacher_top_k: 8}"))
    assert main(["run", str(recipe)]) == 0
    rows = {r["method"]: r for r in json.loads((recipe.parent / "out" / "leaderboard.json").read_text())["rows"]
            if r["kind"] == "method"}
    for row in rows.values():
        assert row["status"] == "complete" and row["cost"]["teacher_forwards"] == 0
        assert row["cost"]["signal_cache"] == {"k": 8, "bytes_per_position": 48, "teacher_passes": 64}
    assert len(list((recipe.parent / "out" / "signals").glob("*.safetensors"))) == 1


def _pairs(count):
    """Preference examples from pocket problems: the gold solution chosen, a truncated one rejected."""
    model, tokenizer = load_causal_lm("pocket:student-init")
    records = [{"prompt": r["problem"], "chosen": r["solution"], "rejected": r["solution"][: len(r["solution"]) // 2]}
               for r in generate("train", count)]
    return model, tokenizer, tokenize_preferences(tokenizer, records, 96)


def test_precomputed_reference_logps_equal_the_live_ones():
    reference, tokenizer, examples = _pairs(7)
    precomputed = ReferenceLogps.compute(reference, examples, tokenizer.pad_token_id, batch_size=3)
    chunked = ReferenceLogps.compute(reference, examples, tokenizer.pad_token_id, batch_size=4, chunk_size=5)
    assert precomputed.passes == 14
    rows = [5, 1, 2]
    live = collate([examples[i] for i in rows], tokenizer.pad_token_id)
    assert add_signals(live, ("reference_logps",), {"reference": reference}) == 6
    cached = {**collate([examples[i] for i in rows], tokenizer.pad_token_id), "example_index": rows}
    assert add_signals(cached, ("reference_logps",), {}, reference_logps=precomputed) == 0
    for key in ("reference_chosen_logps", "reference_rejected_logps", "reference_rejected_mean_logps"):
        assert torch.allclose(cached[key], live[key], atol=1e-4), key
        assert not torch.equal(live[key], torch.zeros(3))
    for side in ("chosen", "rejected"):
        assert torch.allclose(chunked.logps[side], precomputed.logps[side], atol=1e-4)


def _dpo_weights(examples, tokenizer, budget, directory, method=None):
    student, _ = load_causal_lm("pocket:student-init")
    reference, _ = load_causal_lm("pocket:student-init")
    result = train(method or DPO(), student, tokenizer, examples, budget, seed=0, checkpoint_dir=directory,
                   frozen={"reference": reference})
    return result, student.state_dict()


def test_a_fixed_reference_is_scored_once_per_example_and_a_resume_sees_the_same_values(tmp_path):
    _, tokenizer, examples = _pairs(8)
    budget = Budget(steps=4, batch_size=4, learning_rate=1e-2, max_length=96, checkpoint_every=1)
    result, weights = _dpo_weights(examples, tokenizer, budget, tmp_path / "a")
    assert result.teacher_forwards == 16  # 8 pairs × 2 sequences, not 4 steps × 4 pairs × 2

    @dataclass
    class InterruptedDPO(DPO):
        calls: int = 0

        def loss(self, student, batch):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return super().loss(student, batch)

    with pytest.raises(KeyboardInterrupt):
        _dpo_weights(examples, tokenizer, budget, tmp_path / "b", InterruptedDPO())
    _, resumed = _dpo_weights(examples, tokenizer, budget, tmp_path / "b")
    for name, tensor in weights.items():
        assert torch.equal(tensor, resumed[name]), name


def test_a_run_shorter_than_an_epoch_scores_the_reference_live(tmp_path):
    _, tokenizer, examples = _pairs(8)
    budget = Budget(steps=1, batch_size=4, learning_rate=1e-2, max_length=96, checkpoint_every=1)
    result, _ = _dpo_weights(examples, tokenizer, budget, tmp_path)
    assert result.teacher_forwards == 8  # one step of 4 pairs: fewer passes than the 16 of precomputing
