"""geneval and pocket-geneval as registered benchmarks, graded through `distillbench score`."""

import json

import numpy as np
import pytest

from distillbench.benchmarks import geneval
from distillbench.core.errors import UserInputError
from distillbench.core.recipe import validate_options
from distillbench.core.registry import BENCHMARKS
from distillbench.core.score_only import score_predictions
from distillbench.pocket import shapes


def _predictions(tmp_path, prompts, samples=2):
    folder = shapes.write_geneval_folder(prompts, tmp_path / "images", samples_per_prompt=samples)
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in geneval.predictions_from_folder(folder)))
    return folder, path


def test_registered_with_overall_as_the_macro_mean_over_tags():
    for name in ("geneval", "pocket-geneval"):
        entry = BENCHMARKS.entry(name)
        assert entry.family == "image"
        definitions = entry.obj.metric_definitions()
        assert definitions["macro_metrics"] == {"overall": list(geneval.TAGS)}
        assert entry.obj.macro_metrics["overall"] == geneval.TAGS
        assert set(definitions["binary_metrics"]) == {"correct", *geneval.TAGS}


def test_pocket_geneval_through_score_only(tmp_path):
    options = {"per_tag": 2, "samples_per_prompt": 2}
    benchmark, problems = validate_options(BENCHMARKS.get("pocket-geneval"), options, "pocket-geneval")
    assert not problems and len(benchmark.items()) == 2 * len(shapes.evaluation_metadata(per_tag=2))
    folder, predictions = _predictions(tmp_path, shapes.evaluation_metadata(per_tag=2))
    results = score_predictions("pocket-geneval", predictions, options)
    assert results["metrics"]["overall"]["mean"] == 1.0 and results["metrics"]["correct"]["mean"] == 1.0
    assert results["protocol"]["threshold"] == 0.3 and results["protocol"]["detector"] == "pocket"
    # break one image of the single_object tag (4 images): overall drops by a quarter of a sixth
    from PIL import Image

    broken = next(p for p, m in geneval.folder_items(folder) if m["tag"] == "single_object")
    Image.fromarray(np.full((32, 32, 3), shapes.BACKGROUND, dtype=np.uint8)).save(broken)
    results = score_predictions("pocket-geneval", predictions, options)
    assert results["metrics"]["single_object"]["mean"] == 0.75
    assert results["metrics"]["overall"]["mean"] == pytest.approx(1 - 0.25 / 6)
    failed = [row for row in results["per_item"] if row["correct"] == 0]
    assert len(failed) == 1 and failed[0]["reason"].endswith(">=1, found 0")


def test_geneval_on_a_metadata_file_with_the_pocket_detector(tmp_path):
    prompts = shapes.evaluation_metadata(per_tag=1)
    metadata = tmp_path / "evaluation_metadata.jsonl"
    metadata.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    _, predictions = _predictions(tmp_path, prompts, samples=1)
    options = {"metadata": str(metadata), "detector": "pocket", "samples_per_prompt": 1}
    results = score_predictions("geneval", predictions, options)
    assert results["metrics"]["overall"]["mean"] == 1.0
    assert len(results["protocol"]["metadata_hash"]) == 16


def test_geneval_checks_its_paths(tmp_path, shared_data):
    _, problems = validate_options(BENCHMARKS.get("geneval"), {"metadata": str(tmp_path / "missing.jsonl")}, "b")
    assert any("metadata: file not found" in p for p in problems)
    assert any("model_path: a local path is required" in p for p in problems)
    real = str(shared_data / "geneval" / "evaluation_metadata.jsonl")
    benchmark, problems = validate_options(BENCHMARKS.get("geneval"), {"metadata": real, "detector": "pocket"}, "b")
    assert not problems and len(benchmark.items()) == 553 * 4
    assert benchmark.items()[5]["id"] == "00001/1"
    with pytest.raises(UserInputError, match="path of an image file"):
        benchmark.score(benchmark.items()[0], "not an image.png")


def test_distillbench_score_command_on_pocket_geneval(tmp_path, capsys):
    from distillbench.cli.main import main

    _, predictions = _predictions(tmp_path, shapes.evaluation_metadata(per_tag=1), samples=1)
    assert main(["score", "pocket-geneval", "--predictions", str(predictions), "--dataset", "per_tag=1",
                 "--dataset", "samples_per_prompt=1", "--out", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["metrics"]["overall"]["mean"] == 1.0 and len(results["per_item"]) == 6
