"""The pocket judge prompt set and the pocket-mtbench benchmark's scoring."""

import string

from distillbench.benchmarks.mtbench import POCKET_JUDGE_PROMPTS, resolve_judge_prompts
from distillbench.benchmarks.mtbench_judging import load_judge_prompts
from distillbench.pocket.benchmarks.pocket_mtbench import PocketMTBench
from distillbench.pocket.mtbench_world import reference_turns

NAMES = {"pair-v2", "pair-v2-multi-turn", "pair-math-v1", "pair-math-v1-multi-turn", "single-v1",
         "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"}


def _placeholders(template):
    return sorted({field for _, field, _, _ in string.Formatter().parse(template) if field})


def test_pocket_prompt_set_has_the_eight_variants():
    assert set(load_judge_prompts(POCKET_JUDGE_PROMPTS)) == NAMES


def test_pocket_prompts_have_the_official_layout(shared_data):
    official = load_judge_prompts(shared_data / "mt_bench" / "judge_prompts.jsonl")
    ours = load_judge_prompts(POCKET_JUDGE_PROMPTS)
    for name in NAMES:
        assert _placeholders(ours[name]["prompt_template"]) == _placeholders(official[name]["prompt_template"])
        assert ours[name]["type"] == official[name]["type"]


def test_prompt_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv("DISTILLBENCH_JUDGE_PROMPTS", raising=False)
    from distillbench.benchmarks import mtbench

    monkeypatch.setattr(mtbench, "default_judge_prompts_path", lambda: None)  # no FastChat file here
    assert resolve_judge_prompts(None) == (POCKET_JUDGE_PROMPTS, "distillbench-pocket-v1")
    monkeypatch.setattr(mtbench, "default_judge_prompts_path", lambda: tmp_path / "fastchat.jsonl")
    assert resolve_judge_prompts(None) == (tmp_path / "fastchat.jsonl", "fastchat")
    monkeypatch.setenv("DISTILLBENCH_JUDGE_PROMPTS", str(tmp_path / "env.jsonl"))
    assert resolve_judge_prompts(None) == (tmp_path / "env.jsonl", "user file")
    assert resolve_judge_prompts(str(tmp_path / "x.jsonl")) == (tmp_path / "x.jsonl", "user file")


def test_correct_answers_outscore_wrong_ones_with_either_prompt_set(shared_data):
    for prompts in (None, str(shared_data / "mt_bench" / "judge_prompts.jsonl")):
        benchmark = PocketMTBench(judge_prompts=prompts)
        for item in benchmark.items()[::10]:
            good = reference_turns(item["turns"])
            bad = [turn.replace("\\boxed{", "\\boxed{9") for turn in good]
            good_scores, bad_scores = benchmark.score(item, good).values, benchmark.score(item, bad).values
            assert good_scores["score"] == 10 and bad_scores["score"] < 6, item
