import re

from distillbench.pocket.math_world import GENERATORS, SPLITS, generate, split_of

FIELDS = {"problem", "solution", "answer", "level", "type", "unique_id"}


def test_records_have_the_math_fields_and_consistent_boxed_answers():
    for record in generate("train", 300):
        assert set(record) == FIELDS
        assert 1 <= record["level"] <= 5 and record["type"] in GENERATORS
        boxed = re.findall(r"\\boxed\{([^}]*)\}", record["solution"])
        assert boxed == [record["answer"]], record


def test_answers_are_the_true_results():
    for record in generate("test", 200, types=("arithmetic",)):
        expression = re.match(r"Compute (.*)\.", record["problem"]).group(1)
        assert str(eval(expression)) == record["answer"]  # noqa: S307 (our own generated arithmetic)


def test_deterministic_from_the_seed():
    assert generate("dev", 50, seed=3) == generate("dev", 50, seed=3)
    assert generate("dev", 50, seed=3) != generate("dev", 50, seed=4)


def test_splits_are_disjoint_by_construction():
    problems = {split: {r["problem"] for r in generate(split, 400)} for split in SPLITS}
    assert not problems["train"] & problems["test"]
    assert not problems["train"] & problems["dev"]
    assert not problems["dev"] & problems["test"]
    assert all(split_of(p) == "test" for p in problems["test"])
