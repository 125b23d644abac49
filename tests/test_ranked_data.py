"""Ranked-list data (listwise and curriculum methods): loading checks and tokenized layout."""

import json

import pytest

from distillbench.kinds.text_lm.data import collate, load_ranked, problem_records, tokenize_ranked
from distillbench.core.errors import UserInputError
from distillbench.kinds.text_lm.models import load_causal_lm


def _write(tmp_path, records):
    path = tmp_path / "ranked.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_ranked_lists_are_sorted_best_first_with_their_scores(tmp_path):
    _, tokenizer = load_causal_lm("pocket:student-init")
    source = _write(tmp_path, [{"prompt": "Compute 2+2.", "responses": [
        {"content": "2+2=5. \\boxed{5}", "score": 4}, {"content": "2+2=4. \\boxed{4}", "score": 10}]}])
    (example,) = tokenize_ranked(tokenizer, load_ranked(source), 96)
    assert example["scores"] == [10.0, 4.0]
    assert tokenizer.decode([t for t in example["rank0_labels"] if t != -100]).startswith("2+2=4.")
    batch = collate([example, example], tokenizer.pad_token_id)
    assert batch["scores"].tolist() == [[10.0, 4.0], [10.0, 4.0]] and batch["rank1_input_ids"].shape[0] == 2


@pytest.mark.parametrize("records, message", [
    ([{"prompt": "p", "responses": [{"content": "a", "score": 1}]}], "at least 2 responses"),
    ([{"prompt": "p", "responses": [{"content": "a", "score": "high"}, {"content": "b", "score": 1}]}],
     "numeric 'score'"),
    ([{"prompt": "p", "responses": [{"content": "a", "score": 2}, {"content": "b", "score": 1}]},
      {"prompt": "q", "responses": [{"content": "a", "score": 2}, {"content": "b", "score": 1},
                                    {"content": "c", "score": 0}]}], "same number of responses"),
])
def test_bad_ranked_lists_are_rejected_with_the_record_named(tmp_path, records, message):
    with pytest.raises(UserInputError, match=message):
        load_ranked(_write(tmp_path, records))


def test_problem_records_need_answers(tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps({"problem": "p", "solution": "s"}) + "\n")
    with pytest.raises(UserInputError, match="record 1: missing field 'answer'"):
        problem_records(str(path), "train", None)
    assert problem_records("pocket:math", "train", 5)[0]["answer"]
