"""distillbench score: grading predictions made elsewhere, with inline gold or gold looked up by id."""

import json
from pathlib import Path

import pytest

from distillbench.cli.main import main
from distillbench.kinds.text_lm.math_grading import minerva_uses_sympy

FIXTURES = Path(__file__).parent / "fixtures"


def test_inline_gold_with_each_grader(tmp_path, capsys):
    results = {}
    for grader in ("math-verify", "minerva", "hendrycks"):
        out = tmp_path / grader
        assert main(["score", "math500", "--predictions", str(FIXTURES / "math_predictions.jsonl"),
                     "--grader", grader, "--out", str(out)]) == 0
        results[grader] = json.loads((out / "results.json").read_text())
    per_item = {g: {item["id"]: item["accuracy"] for item in r["per_item"]} for g, r in results.items()}
    assert per_item["math-verify"] == {"a": 1.0, "b": 1.0, "c": 0.0, "d": 1.0}
    assert per_item["minerva"]["b"] == 1.0 and per_item["minerva"]["a"] == 0.0  # minerva reads only "Final Answer"
    assert per_item["hendrycks"]["c"] == 0.0
    assert results["math-verify"]["metrics"]["accuracy"]["n"] == 4
    assert all("reason" in item for item in results["hendrycks"]["per_item"])
    assert "accuracy" in capsys.readouterr().out


def test_gold_looked_up_by_id_in_the_real_math500(shared_data, tmp_path):
    records = [json.loads(line) for line in (shared_data / "math500" / "test.jsonl").read_text().splitlines()[:3]]
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(json.dumps({"id": r["unique_id"], "response": f"\\boxed{{{r['answer']}}}"}) + "\n"
                                   for r in records))
    source = str(shared_data / "math500" / "test.jsonl")
    from distillbench.core.score_only import score_predictions

    results = score_predictions("math500", predictions, {"source": source})
    assert results["metrics"]["accuracy"]["mean"] == 1.0 and results["metrics"]["accuracy"]["n"] == 3


@pytest.mark.skipif(not minerva_uses_sympy(), reason="sympy parse_latex needs antlr4-python3-runtime 4.11")
def test_minerva_lm_eval_grader(tmp_path):
    """--grader minerva-lm-eval scores an identical ordered pair 0, as lm-eval does; minerva scores it 1."""
    line = "Final Answer: The final answer is ${}$. I hope it is correct."
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(json.dumps({"id": "pair", "response": line.format("(2,4)"), "gold": "(2,4)"}) + "\n"
                           + json.dumps({"id": "half", "response": line.format("0.5"), "gold": "\\frac{1}{2}"}) + "\n")
    per_item = {}
    for grader in ("minerva", "minerva-lm-eval"):
        out = tmp_path / grader
        assert main(["score", "math500", "--predictions", str(predictions), "--grader", grader, "--out", str(out)]) == 0
        results = json.loads((out / "results.json").read_text())
        per_item[grader] = {item["id"]: item["accuracy"] for item in results["per_item"]}
    assert per_item == {"minerva": {"pair": 1.0, "half": 1.0}, "minerva-lm-eval": {"pair": 0.0, "half": 1.0}}


def test_gsm8k_inline_gold(tmp_path):
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(json.dumps({"id": 1, "response": "2+2=4 #### 4", "gold": "4"}) + "\n"
                           + json.dumps({"id": 2, "response": "It is 18 dollars, so $18.", "gold": "#### 18"}) + "\n")
    from distillbench.core.score_only import score_predictions

    results = score_predictions("gsm8k", predictions, {})
    by_id = {item["id"]: item for item in results["per_item"]}
    assert by_id["1"]["strict_match"] == 1.0 and by_id["2"]["strict_match"] == 0.0
    assert by_id["2"]["flexible_extract"] == 1.0


def test_bad_predictions_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n')
    assert main(["score", "math500", "--predictions", str(bad)]) == 2
    assert "bad.jsonl:1: missing field 'response'" in capsys.readouterr().err
    good = FIXTURES / "math_predictions.jsonl"
    assert main(["score", "math5000", "--predictions", str(good)]) == 2
    assert "did you mean 'math500'" in capsys.readouterr().err
    assert main(["score", "math500", "--predictions", str(good), "--grader", "sympy"]) == 2
