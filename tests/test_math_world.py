import re

from distillbench.pocket.math_world import GENERATORS, SPLITS, generate, split_of, written

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


def _from_columns(working: str, op: str) -> int:
    """Rebuild a result from its written columns alone (each column's last digit, plus the final carry)."""
    values = [int(step.rsplit("=", 1)[1].split(" ")[0]) for step in working.rstrip(".").split(", ")]
    if op == "/":
        return int("".join(step.split("=")[1].split(" ")[0] for step in working.rstrip(".").split(", ")))
    digits = "".join(str(v % 10) for v in reversed(values))
    carry = values[-1] // 10 if op in "+*" else 0
    return int(f"{carry or ''}{digits}")


def test_written_columns_carry_and_borrow_correctly():
    import random

    rng = random.Random(0)
    for _ in range(2000):
        a, b = rng.randint(0, 9999), rng.randint(0, 9999)
        assert _from_columns(written(a, "+", b), "+") == a + b
        assert _from_columns(written(max(a, b), "-", min(a, b)), "-") == max(a, b) - min(a, b)
        assert _from_columns(written(a, "*", b % 9 + 1), "*") == a * (b % 9 + 1)
        assert _from_columns(written(a, "/", b % 9 + 1), "/") == a // (b % 9 + 1)
    assert written(117, "-", 29) == "17-9-0=8, 11-2-1=8, 1-0-1=0."
    assert written(2240, "/", 5) == "2/5=0 r2, 22/5=4 r2, 24/5=4 r4, 40/5=8 r0."


def test_algebra_and_arithmetic_solutions_show_the_written_working():
    for record in generate("train", 400, types=("arithmetic", "algebra")):
        if record["level"] >= 4:
            assert ", " in record["solution"], record  # multi-digit operands are worked in columns
