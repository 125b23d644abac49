import json

import pytest

from distillbench.cli.main import main
from distillbench.core.errors import UserInputError
from distillbench.pocket import zoo


def test_tiny_zoo_builds_deterministically_and_verifies(tmp_path, monkeypatch):
    # two builds in this process, so on the same torch thread count: the weights depend on it (another test may
    # have changed it since the session cache's copy was built)
    monkeypatch.setenv("DISTILLBENCH_CACHE", str(tmp_path / "first"))
    first = json.loads((zoo.build("student-init") / zoo.MANIFEST).read_text())["sha256"]
    monkeypatch.setenv("DISTILLBENCH_CACHE", str(tmp_path / "second"))
    rebuilt = json.loads((zoo.build("student-init") / zoo.MANIFEST).read_text())["sha256"]
    assert rebuilt == first
    assert zoo.verify("student-init") == []


def test_verify_detects_a_flipped_byte(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISTILLBENCH_CACHE", str(tmp_path))
    directory = zoo.build("student-init")
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert zoo.verify("student-init") == ["student-init: model.safetensors hash mismatch"]
    assert main(["zoo", "verify", "student-init"]) == 1
    assert "hash mismatch" in capsys.readouterr().err
    with pytest.raises(UserInputError, match="hash mismatch"):
        zoo.ensure_built("student-init")


def test_zoo_list_and_unknown_name(capsys):
    assert main(["zoo", "list"]) == 0
    assert "teacher-sft" in capsys.readouterr().out
    assert main(["zoo", "build", "teacher-sfft"]) == 2
