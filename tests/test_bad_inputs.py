"""The bad-input corpus (tests/bad_inputs/): each input exits 2 with one clear line naming the file
and the field or line, no traceback, and nothing written."""

import shutil
from pathlib import Path

import pytest
import yaml

from distillbench.cli.main import main
from distillbench.pocket import zoo

CORPUS = Path(__file__).parent / "bad_inputs"
EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text())
VALID_BOARD = Path(__file__).resolve().parents[1] / "leaderboards" / "pocket-llm-demo.json"


def _command(case: str, out: Path) -> list[str]:
    path = str(CORPUS / case)
    if case.startswith("recipes/"):
        return ["run", path, "--out", str(out)]
    if case.startswith("baselines/"):
        return ["compare", path, str(VALID_BOARD)]
    return ["leaderboard", path]


def _check_one_clear_error(capsys, fragment: str, name: str) -> None:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("error: ")]  # not progress lines
    assert len(lines) == 1, captured.err
    # the line names the faulty file: the input itself, or the data file it points to (named in the fragment)
    assert fragment in lines[0] and (name in lines[0] or ".json" in fragment), lines[0]
    assert "Traceback" not in captured.err + captured.out


def test_the_corpus_is_large_enough_and_fully_listed():
    files = {str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*") if p.name != ".keep"}
    listed_dirs = {case for case in EXPECTED if (CORPUS / case).is_dir()}
    inputs = {f for f in files if not f.startswith("datasets/")} | listed_dirs
    assert len(EXPECTED) >= 30
    assert inputs - {f for f in files if f.startswith("leaderboards/")} <= set(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_input_exits_2_with_one_clear_line(case, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_command(case, out)) == 2
    _check_one_clear_error(capsys, EXPECTED[case], Path(case).name)
    assert not out.exists(), "nothing may be written"


@pytest.fixture
def private_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLBENCH_CACHE", str(tmp_path / "cache"))
    return zoo.ensure_built("student-init")


def _recipe(tmp_path: Path, student: str) -> Path:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"""name: bad
kind: text-lm
teacher: pocket:teacher-sft
student: {student}
data: {{source: "pocket:math", size: 8}}
budget: {{steps: 1, batch_size: 2, learning_rate: 0.001, max_length: 64}}
methods: [sft]
benchmarks: [{{name: pocket-math, n: 2}}]
""")
    return recipe


@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_a_corrupt_zoo_checkpoint_is_refused(damage, private_zoo, tmp_path, capsys):
    weights = private_zoo / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "flipped byte":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) // 2]
    weights.write_bytes(bytes(data))
    out = tmp_path / "out"
    assert main(["run", str(_recipe(tmp_path, "pocket:student-init")), "--out", str(out)]) == 2
    _check_one_clear_error(capsys, "hash mismatch", "model.safetensors")
    assert not out.exists()


@pytest.mark.parametrize("damage", ["flipped header byte", "truncated"])
def test_a_corrupt_local_checkpoint_is_refused(damage, private_zoo, tmp_path, capsys):
    local = tmp_path / "local-model"
    shutil.copytree(private_zoo, local)
    weights = local / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "flipped header byte":
        data[10] ^= 0xFF  # inside the JSON header
    else:
        data = data[: len(data) // 2]
    weights.write_bytes(bytes(data))
    out = tmp_path / "out"
    assert main(["run", str(_recipe(tmp_path, str(local))), "--out", str(out)]) == 2
    _check_one_clear_error(capsys, "cannot read weights", "model.safetensors")
    assert not out.exists()


def test_logit_distillation_refuses_a_teacher_with_another_vocabulary(private_zoo, tmp_path, capsys):
    from transformers import AutoTokenizer

    other = tmp_path / "other-vocab"
    shutil.copytree(private_zoo, other)
    tokenizer = AutoTokenizer.from_pretrained(other)
    tokenizer.add_tokens(["<extra>"])
    tokenizer.save_pretrained(other)
    recipe = _recipe(tmp_path, str(other))
    recipe.write_text(recipe.read_text().replace("methods: [sft]", "methods: [kd]"))
    out = tmp_path / "out"
    assert main(["run", str(recipe), "--out", str(out)]) == 2
    _check_one_clear_error(capsys, "different vocabularies", "other-vocab")
    assert not out.exists()
