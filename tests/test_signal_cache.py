"""The top-k teacher signal cache: exact at k = V, the remainder spread over the rest, one
teacher pass per training example for a whole run."""

import json

import torch

from distillbench.cli.main import main
from distillbench.kinds.text_lm.data import collate, tokenize_records
from distillbench.kinds.text_lm.models import load_causal_lm
from distillbench.kinds.text_lm.topk_cache import SignalCache
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



def test_two_hub_teachers_with_a_common_prefix_get_separate_caches(tmp_path):
    # the file name kept the fingerprint's first 16 characters: both of these were "meta-llama/Llama"
    teacher, tokenizer = load_causal_lm("pocket:teacher-sft")
    examples = tokenize_records(tokenizer, generate("train", 4), 96)
    SignalCache.build_or_load(tmp_path, teacher, "meta-llama/Llama-3.2-3B-Instruct@abc", examples, 4)
    SignalCache.build_or_load(tmp_path, teacher, "meta-llama/Llama-3.1-8B-Instruct@def", examples, 4)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
