"""The lm-eval bridge: local task YAMLs over a fixture JSONL, generation and log-likelihood tasks."""

from pathlib import Path

import pytest

pytest.importorskip("lm_eval", reason="lm_eval is not installed (pip install 'distillbench[lm-eval]')")

from distillbench.benchmarks.lm_eval_bridge import LMEvalTask  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lmeval" / "arith.jsonl"

GENERATE = """task: pocket_arith_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""

# gsm8k's shape: two filters over one generation, each with its own exact_match
TWO_FILTERS = GENERATE.replace("pocket_arith_gen", "pocket_arith_two") + """filter_list:
  - name: whole
    filter:
      - function: take_first
  - name: last-digit
    filter:
      - function: regex
        regex_pattern: "(\\\\d)(?!.*\\\\d)"
      - function: take_first
"""

CHOICE = """task: pocket_arith_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture
def tasks(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "gen.yaml").write_text(GENERATE.format(data=FIXTURE))
    (tmp_path / "choice.yaml").write_text(CHOICE.format(data=FIXTURE))
    (tmp_path / "two.yaml").write_text(TWO_FILTERS.format(data=FIXTURE))
    return str(tmp_path)


@pytest.fixture(scope="module")
def student():
    from distillbench.kinds.text_lm.models import load_causal_lm

    return load_causal_lm("pocket:student-init")


def test_unknown_task_and_group_are_named(tasks):
    assert LMEvalTask().check()[0].startswith("task:")
    assert "did you mean 'pocket_arith_gen'" in LMEvalTask(task="pocket_arith_ge", include_path=tasks).check()[0]
    assert LMEvalTask(task="pocket_arith_gen", include_path=tasks).check() == []


def test_generation_task_keeps_per_sample_records(tasks, student):
    model, tokenizer = student
    benchmark = LMEvalTask(task="pocket_arith_gen", include_path=tasks, limit=5)
    items = benchmark.items()
    assert [item["id"] for item in items] == ["0", "1", "2", "3", "4"]
    assert items[1]["doc"]["question"] == "3+4="
    outputs = benchmark.predict(model, tokenizer, items, batch_size=4)
    for item, output in zip(items, outputs):
        score = benchmark.score(item, output)
        assert set(score.values) == {"exact_match"} and score.values["exact_match"] in (0.0, 1.0)
        # lm_eval's exact match compares the generation with the target; check it on our side.
        assert score.values["exact_match"] == float(output["response"].strip() == item["doc"]["answer"])
    protocol = benchmark.protocol()
    assert protocol["scorer"] == "lm_eval" and protocol["task"] == "pocket_arith_gen"


def _predicted(task, tasks, student, limit, batch_size):
    """(benchmark, items, the student's outputs) for an lm-eval task of the test folder."""
    model, tokenizer = student
    benchmark = LMEvalTask(task=task, include_path=tasks, limit=limit)
    items = benchmark.items()
    return benchmark, items, benchmark.predict(model, tokenizer, items, batch_size=batch_size)


def test_loglikelihood_task_agrees_with_the_models_own_choice(tasks, student):
    import torch

    model, tokenizer = student
    benchmark, items, outputs = _predicted("pocket_arith_choice", tasks, student, limit=4, batch_size=2)
    for item, output in zip(items, outputs):
        doc = item["doc"]
        scores = []
        for choice in doc["choices"]:  # lm_eval's target delimiter is one space
            context = tokenizer(doc["question"], add_special_tokens=False)["input_ids"]
            full = tokenizer(doc["question"] + " " + choice, add_special_tokens=False)["input_ids"]
            prefix = ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []) + full
            with torch.no_grad():
                logps = torch.log_softmax(model(torch.tensor([prefix])).logits[0, :-1], -1)
            offset = len(prefix) - len(full) + len(context)
            scores.append(sum(logps[i - 1, prefix[i]].item() for i in range(offset, len(prefix))))
        expected = float(max(range(len(scores)), key=scores.__getitem__) == doc["label"])
        assert benchmark.score(item, output).values == {"acc": expected}


def test_a_task_with_two_filters_keeps_each_filters_metric(tasks, student):
    # lm_eval logs one sample per document and filter; keyed by document alone, the last filter overwrote
    # the first and its value was reported as plain exact_match
    benchmark, items, outputs = _predicted("pocket_arith_two", tasks, student, limit=5, batch_size=4)
    for item, output in zip(items, outputs):
        values = benchmark.score(item, output).values
        assert set(values) == {"exact_match,whole", "exact_match,last-digit"}
        whole = output["response"].split(" | ")[0].removeprefix("whole: ")
        assert values["exact_match,whole"] == float(whole.strip() == item["doc"]["answer"])
