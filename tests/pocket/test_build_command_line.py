"""builds.command_line, the one `python -m` command of the pocket builds: where each model is written."""

import json

import pytest

from distillbench.pocket import builds


def _run(argv, tmp_path, names=("a", "b"), **options):
    built = []

    def build(name, target):
        built.append((name, target))
        return {"loss": 0.5}

    builds.command_line(argv, module="m", description="d", build=build,
                        cache_directory=lambda name: tmp_path / "cache" / str(name), names=names, **options)
    return built


def test_a_zoo_builds_every_name_into_the_cache_by_default(tmp_path, capsys):
    assert _run([], tmp_path) == [("a", tmp_path / "cache" / "a"), ("b", tmp_path / "cache" / "b")]
    first = capsys.readouterr().out.split("\n}\n")[0] + "\n}"
    assert json.loads(first) == {"name": "a", "directory": str(tmp_path / "cache" / "a"), "loss": 0.5}


def test_export_and_output_write_a_folder_per_name(tmp_path):
    assert _run(["b", "--export"], tmp_path, packaged=tmp_path / "shipped") == [("b", tmp_path / "shipped" / "b")]
    assert _run(["a", "--output", str(tmp_path / "out")], tmp_path) == [("a", tmp_path / "out" / "a")]


def test_a_single_model_has_no_names_and_writes_the_folder_itself(tmp_path):
    assert _run([], tmp_path, names=()) == [(None, tmp_path / "cache" / "None")]
    assert _run(["--export"], tmp_path, names=(), packaged=tmp_path / "shipped") == [(None, tmp_path / "shipped")]


def test_unknown_names_and_absent_flags_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _run(["c"], tmp_path)
    assert "not built here: c (known: a, b)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run(["--export"], tmp_path)  # no shipped copies
    with pytest.raises(SystemExit):
        _run(["--output", "x"], tmp_path, output=False)
