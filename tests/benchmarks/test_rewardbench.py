"""rewardbench: RewardBench's per-pair rule, its section weights, the implicit and classifier rewards,
and the pocket instance's held-out pairs."""

import json
from pathlib import Path

import numpy as np
import pytest

from distillbench.benchmarks.rewardbench import (EXAMPLE_COUNTS, SUBSET_MAPPING, RewardBench, item_factors,
                                                 pair_correct, scores_per_section)
from distillbench.core.errors import UserInputError
from distillbench.core.score_only import score_predictions
from distillbench.pocket.benchmarks.pocket_rewardbench import PocketRewardBench

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "rewardbench" / "filtered.jsonl"


@pytest.mark.parametrize("chosen, rejected, expected", [(1.0, 0.5, 1), (0.5, 1.0, 0), (0.7, 0.7, 0),
                                                        (-3.0, -3.5, 1), (0.0, -0.0, 0)])
def test_a_pair_is_right_only_when_chosen_is_strictly_higher(chosen, rejected, expected):
    assert pair_correct(chosen, rejected) == expected


def test_sections_weigh_subsets_by_the_official_example_counts():
    accuracies = {"math-prm": 1.0, "hep-python": 0.0, "alpacaeval-easy": 0.5, "mt-bench-easy": 1.0}
    scores = scores_per_section(EXAMPLE_COUNTS, SUBSET_MAPPING, accuracies)
    assert scores["Reasoning"] == pytest.approx(984 / (984 + 164))  # math-prm counts 984, not 447
    assert scores["Chat"] == pytest.approx((0.5 * 100 + 1.0 * 28) / 128)
    assert scores["Safety"] == 0.0  # no subset present: 0, as reward-bench reports it


def test_item_means_equal_the_official_section_scores_and_their_mean():
    rng = np.random.default_rng(0)
    subsets = ["math-prm", "hep-cpp", "hep-go", "alpacaeval-hard", "mt-bench-med", "xstest-should-refuse",
               "donotanswer", "llmbar-natural"]
    sizes = {s: int(rng.integers(3, 30)) for s in subsets}
    results = {s: rng.integers(0, 2, sizes[s]) for s in subsets}
    factors = item_factors(sizes, EXAMPLE_COUNTS, SUBSET_MAPPING)
    official = scores_per_section(EXAMPLE_COUNTS, SUBSET_MAPPING, {s: r.mean() for s, r in results.items()})
    for section in ("Chat", "Chat Hard", "Safety", "Reasoning"):
        metric = section.lower().replace(" ", "_")
        values = [r * factors[s][metric] for s in subsets if metric in factors[s] for r in results[s]]
        assert np.mean(values) == pytest.approx(official[section])
    overall = [r * factors[s]["score"] for s in subsets for r in results[s]]
    assert np.mean(overall) == pytest.approx(np.mean(list(official.values())))


def test_score_only_on_the_real_format(tmp_path):
    rewards = {"3001": (2.0, 1.0), "3002": (0.0, 1.0), "4001": (1.0, 0.0), "4002": (1.0, 0.0), "1": (1.0, 1.0),
               "2001": (5.0, 1.0), "5001": (0.0, 2.0), "9001": (1.0, 0.0)}
    predictions = tmp_path / "rewards.jsonl"
    predictions.write_text("".join(json.dumps({"id": i, "response": {"chosen": c, "rejected": r}}) + "\n"
                                   for i, (c, r) in rewards.items()))
    results = score_predictions("rewardbench", predictions, {"dataset": str(FIXTURE)})
    metrics = {name: m["mean"] for name, m in results["metrics"].items()}
    assert metrics["accuracy"] == pytest.approx(5 / 8)  # the prior-set pair counts here only
    reasoning = (984 * 0.5 + 164 * 1.0) / (984 + 164)
    assert metrics["reasoning"] == pytest.approx(reasoning)
    assert metrics["chat"] == 0.0 and metrics["safety"] == 1.0 and metrics["chat_hard"] == 0.0  # the tie is wrong
    assert metrics["score"] == pytest.approx((reasoning + 0 + 1 + 0) / 4)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "1", "response": "chosen"}) + "\n")
    with pytest.raises(UserInputError, match="must be"):
        score_predictions("rewardbench", bad, {"dataset": str(FIXTURE)})


def test_pocket_pairs_are_held_out_and_the_rubric_prefers_every_chosen():
    from distillbench.pocket.math_world import split_of
    from distillbench.pocket.rubric import score_response
    from distillbench.pocket.mtbench_world import solve

    benchmark = PocketRewardBench(per_subset=20)
    items = benchmark.items()
    assert len({item["id"] for item in items}) == len(items) == 100
    for item in items:
        if isinstance(item["prompt"], str):
            assert split_of(item["prompt"]) == "test"
            answer = item["chosen"].rsplit("\\boxed{", 1)[1].rstrip("}")
        else:
            answer = solve([item["prompt"][0]["content"], item["prompt"][2]["content"]])[1]
        chosen = score_response(item["chosen"], answer, item["chosen"]).rating
        rejected = score_response(item["rejected"], answer, item["chosen"]).rating
        assert chosen > rejected, item


def _tiny_student():
    from distillbench.kinds.text_lm.models import load_causal_lm

    return load_causal_lm("pocket:student-init")


def test_implicit_reward_is_the_summed_log_ratio_and_batch_invariant():
    from distillbench.benchmarks.rewards import implicit_rewards
    from distillbench.kinds.text_lm.data import collate, tokenize_preferences
    from distillbench.kinds.text_lm.logps import sequence_logps

    model, tokenizer = _tiny_student()
    items = PocketRewardBench(per_subset=3).items()
    free = implicit_rewards(model, tokenizer, None, items, batch_size=7, max_length=256, ref_free_average=False)
    one = collate(tokenize_preferences(tokenizer, items[-1:], 256), tokenizer.pad_token_id)
    expected = float(sequence_logps(model, one, "chosen")[0].detach())
    assert free[-1]["chosen"] == pytest.approx(expected, abs=1e-4)
    # reference-free by default: the mean over the response tokens, RewardBench's --ref_free_type avg
    averaged = implicit_rewards(model, tokenizer, None, items, batch_size=7, max_length=256)
    tokens = int((one["chosen_labels"][:, 1:] != -100).sum())
    assert averaged[-1]["chosen"] == pytest.approx(expected / tokens, abs=1e-5) and tokens > 1
    singles = implicit_rewards(model, tokenizer, None, items, batch_size=1, max_length=256, ref_free_average=False)
    assert np.allclose([r["chosen"] for r in free], [r["chosen"] for r in singles], atol=1e-4)
    # Against itself as reference every reward is 0, and RewardBench counts ties as wrong.
    same = implicit_rewards(model, tokenizer, "pocket:student-init", items, batch_size=4, max_length=256)
    assert all(abs(r["chosen"]) < 1e-4 and abs(r["rejected"]) < 1e-4 for r in same)


def test_a_multi_turn_prompt_keeps_its_context_and_labels_only_the_response():
    from distillbench.kinds.text_lm.data import tokenize_preferences

    _, tokenizer = _tiny_student()
    item = PocketRewardBench(per_subset=1).items()[-1]
    example = tokenize_preferences(tokenizer, [item], 512)[0]
    labelled = [t for t in example["chosen_labels"] if t != -100]
    assert tokenizer.decode(labelled, skip_special_tokens=True).strip() == item["chosen"].strip()
    assert item["prompt"][1]["content"] in tokenizer.decode(example["chosen_input_ids"], skip_special_tokens=True)


def test_classifier_reward_model(tmp_path):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from distillbench.benchmarks.rewards import classifier_rewards

    _, tokenizer = _tiny_student()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    benchmark = RewardBench(dataset=str(FIXTURE), reward="classifier", reward_model=str(tmp_path / "rm"))
    assert benchmark.check() == []
    items = benchmark.items()
    batched = classifier_rewards(str(tmp_path / "rm"), items, batch_size=8, max_length=128)
    singles = classifier_rewards(str(tmp_path / "rm"), items, batch_size=1, max_length=128)
    assert np.allclose([r["chosen"] for r in batched], [r["chosen"] for r in singles], atol=1e-4)
    assert len({round(r["chosen"], 6) for r in batched}) > 1  # the score reads the text
    scores = [benchmark.score(item, output).values["accuracy"] for item, output in zip(items, batched)]
    assert set(scores) <= {0.0, 1.0}


def test_bad_options_are_named():
    assert RewardBench().check()[0].startswith("dataset:")
    assert any(p.startswith("reward_model:") for p in RewardBench(dataset=str(FIXTURE), reward="classifier").check())
    assert any(p.startswith("reference:") for p in RewardBench(dataset=str(FIXTURE), reference="/nope").check())
