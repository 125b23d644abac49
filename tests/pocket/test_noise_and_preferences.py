import json

from distillbench.pocket import zoo
from distillbench.pocket.math_world import NOISE_KINDS, add_noise, generate
from distillbench.pocket.preferences import build_preference_sets
from distillbench.pocket.rubric import score_response


def test_noise_fraction_and_kinds():
    records = generate("train", 400)
    noisy = add_noise(records, 0.3, seed=1)
    kinds = [r["noise"] for r in noisy]
    assert 0.2 < sum(k is not None for k in kinds) / len(kinds) < 0.4
    assert set(kinds) - {None} == set(NOISE_KINDS)
    for clean, dirty in zip(records, noisy):
        if dirty["noise"] is None:
            assert dirty["solution"] == clean["solution"]
        elif dirty["noise"] == "missing_box" or dirty["noise"] == "off_format":
            assert "\\boxed" not in dirty["solution"] and clean["answer"] in dirty["solution"]
        elif dirty["noise"] == "wrong_step":
            assert f"\\boxed{{{clean['answer']}}}" not in dirty["solution"]
    assert add_noise(records, 0.0) == [{**r, "noise": None} for r in records]


def test_rubric_orders_correct_boxed_concise_first():
    reference = "7+6=13. \\boxed{13}"
    best = score_response("7+6=13. \\boxed{13}", "13", reference)
    unboxed = score_response("7+6=13. The answer is 13.", "13", reference)
    padded = score_response("Let me think about this carefully. " * 3 + reference, "13", reference)
    wrong = score_response("7+6=12. \\boxed{12}", "13", reference)
    assert best.rating == 10 and unboxed.rating == 8 and padded.rating < best.rating and wrong.rating == 4


def test_preference_sets_pair_best_with_worst_and_skip_ties():
    records = generate("train", 2)
    graded = [[{"content": "a", "score": 10, "correct": True}, {"content": "b", "score": 4, "correct": False}],
              [{"content": "c", "score": 6, "correct": False}, {"content": "d", "score": 6, "correct": False}]]
    sets = build_preference_sets(records, graded)
    assert len(sets["pairs.jsonl"]) == 1 and len(sets["ranked.jsonl"]) == 2 and len(sets["traces.jsonl"]) == 4
    pair = sets["pairs.jsonl"][0]
    assert pair["chosen"] == [{"role": "assistant", "content": "a"}]
    assert pair["prompt"] == [{"role": "user", "content": records[0]["problem"]}]


def test_zoo_preference_data_is_in_hf_format():
    directory = zoo.ensure_built("math-preference")
    pair = json.loads((directory / "pairs.jsonl").read_text().splitlines()[0])
    assert {"prompt", "chosen", "rejected"} <= set(pair)
    assert pair["score_chosen"] > pair["score_rejected"]
