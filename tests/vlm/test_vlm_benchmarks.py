"""The registered VLM benchmarks: score-only mode on the official-format fixtures gives the official
scripts' numbers (pooled where they are pooled), and predict runs a tiny LLaVA on local images."""

import json
import shutil
from pathlib import Path

import pytest

from distillbench.benchmarks.vlm import chair, pope, videohallucer, vqa
from distillbench.cli.main import main
from distillbench.core.registry import BENCHMARKS
from distillbench.core.score_only import parse_dataset_options

FIXTURES = Path(__file__).parents[1] / "fixtures" / "vlm"


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def run_score(tmp_path, benchmark: str, predictions: Path, *dataset: str) -> dict:
    out = tmp_path / f"out-{benchmark}"
    argv = ["score", benchmark, "--predictions", str(predictions), "--out", str(out)]
    for option in dataset:
        argv += ["--dataset", option]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def means(results: dict) -> dict:
    return {name: metric["mean"] for name, metric in results["metrics"].items()}


def test_registered_in_the_vlm_family():
    assert {e.name for e in BENCHMARKS.entries("vlm")} >= {"vqav2", "pope", "chair", "videohallucer"}


def pope_predictions(tmp_path) -> Path:
    records = []
    for split in pope.SPLITS:
        answers = pope.load_answers(FIXTURES / "pope" / f"answers_{split}.jsonl")
        records += [{"id": f"{split}/{number}", "response": answer["answer"]} for number, answer in
                    enumerate(answers, start=1)]  # the fixture's question ids are 1..4 in file order
    return write_jsonl(tmp_path / "pope.jsonl", records)


def test_pope_per_split_and_average_equal_the_official_script(tmp_path):
    results = run_score(tmp_path, "pope", pope_predictions(tmp_path), f"questions={FIXTURES / 'pope'}")
    official = {}
    for split, path in pope.split_files(FIXTURES / "pope").items():
        official[split] = pope.align(pope.load_questions(path),
                                     pope.load_answers(FIXTURES / "pope" / f"answers_{split}.jsonl"))
    expected = pope.evaluate_splits(official)
    got = means(results)
    for split in (*pope.SPLITS, "average"):
        for metric in pope.METRICS:
            assert got[f"{split}/{metric}"] == pytest.approx(expected[split][metric]), f"{split}/{metric}"
    assert results["metrics"]["average/f1"]["n"] == 12 and results["metrics"]["random/f1"]["n"] == 4
    # The ratio parts are in the per-item records, not among the metrics.
    assert not [name for name in got if name.endswith((".num", ".den"))]
    first = next(item for item in results["per_item"] if item["id"] == "adversarial/4")  # "Not at all." reads as yes
    assert first["adversarial/f1.num"] == 0 and first["adversarial/f1.den"] == 1 and "parsed 'yes'" in first["reason"]


def test_pope_one_split_only(tmp_path):
    predictions = write_jsonl(tmp_path / "p.jsonl", [{"id": f"popular/{i}", "response": "Yes"} for i in range(1, 5)])
    results = run_score(tmp_path, "pope", predictions, f"questions={FIXTURES / 'pope'}", "splits=[popular]")
    got = means(results)
    assert got["popular/precision"] == 0.5 and got["popular/recall"] == 1.0 and got["popular/yes_ratio"] == 1.0
    assert got["average/f1"] == got["popular/f1"] == pytest.approx(2 / 3)
    assert not [name for name in got if name.startswith("random/")]


def test_vqav2_equals_the_official_evaluation(tmp_path):
    questions, annotations = vqa.find_vqa_files(FIXTURES / "vqa")
    fake = vqa.load_results(FIXTURES / "vqa" / "v2_OpenEnded_mscoco_val2014_fake_results.json")
    predictions = write_jsonl(tmp_path / "vqa.jsonl", [{"id": i, "response": a} for i, a in fake.items()])
    results = run_score(tmp_path, "vqav2", predictions, f"questions={questions}", f"annotations={annotations}")
    official = vqa.evaluate(vqa.load_vqa(questions, annotations), fake)
    got = means(results)
    assert round(100 * got["accuracy"], 2) == official["overall"] == 75.0
    for answer_type, value in official["per_answer_type"].items():
        assert round(100 * got[f"accuracy[{answer_type}]"], 2) == value
    old = run_score(tmp_path / "old", "vqav2", predictions, f"questions={questions}", f"annotations={annotations}",
                    "rules=2017")
    assert round(100 * means(old)["accuracy"], 2) == vqa.evaluate(vqa.load_vqa(questions, annotations), fake,
                                                                    rules="2017")["overall"]


def test_chair_pools_mentions_as_the_official_script(tmp_path):
    captions = chair.load_generated_captions(FIXTURES / "chair" / "generated_captions.jsonl")
    predictions = write_jsonl(tmp_path / "chair.jsonl", [{"id": i, "response": c} for i, c in captions])
    results = run_score(tmp_path, "chair", predictions, f"annotations={FIXTURES / 'chair'}")
    truth, _ = chair.load_coco_ground_truth(FIXTURES / "chair", [i for i, _ in captions])
    official = chair.evaluate(captions, truth)
    got = means(results)
    assert got["chair_s"] == pytest.approx(official["CHAIRs"])
    assert got["chair_i"] == pytest.approx(official["CHAIRi"]) == pytest.approx(3 / 10)  # not the mean of per-caption CHAIRi
    assert got["recall"] == pytest.approx(official["recall"])
    assert results["protocol"]["prompt"] == "Please describe this image in detail."


def videohallucer_data(tmp_path) -> tuple[Path, Path]:
    """The fixtures' result files laid out as the official data folder, and their predictions as JSONL."""
    data, records = tmp_path / "videohallucer", []
    for category, fixture in (("obj_rel", "obj_rel_tiny.json"), ("temporal", "temporal_tiny.json")):
        target = data / videohallucer.CATEGORIES[category]
        target.parent.mkdir(parents=True)
        shutil.copy(FIXTURES / "videohallucer" / fixture, target)
        for index, pair in enumerate(videohallucer.load_pairs(target)):
            records.append({"id": f"{category}/{index}",
                            "response": [pair["basic"]["predict"], pair["hallucination"]["predict"]]})
    return data, write_jsonl(tmp_path / "vh.jsonl", records)


def test_videohallucer_categories_overall_and_bias(tmp_path):
    data, predictions = videohallucer_data(tmp_path)
    results = run_score(tmp_path, "videohallucer", predictions, f"data={data}", "categories=[obj_rel, temporal]")
    results_files = videohallucer.load_results(FIXTURES / "videohallucer", "tiny", ["obj_rel", "temporal"])
    official = videohallucer.evaluate(results_files)
    got = means(results)
    for category in ("obj_rel", "temporal"):
        for metric in videohallucer.METRICS:
            assert got[f"{category}/{metric}"] == pytest.approx(official[category][metric])
    for metric in videohallucer.METRICS:
        assert got[f"overall/{metric}"] == pytest.approx(official["all"][metric])
    bias = videohallucer.bias(results_files["obj_rel"] + results_files["temporal"])
    for metric in ("yes_difference", "no_difference", "false_positive_ratio", "hallucination_score"):
        assert got[f"bias/{metric}"] == pytest.approx(bias[metric]), metric


def test_dataset_options_and_bad_input(tmp_path, capsys):
    assert parse_dataset_options(["questions=a=b", "splits=[random, popular]", "n=3", "rules=2017", "n2=null"]) == {
        "questions": "a=b", "splits": ["random", "popular"], "n": "3", "rules": "2017", "n2": None}
    predictions = write_jsonl(tmp_path / "p.jsonl", [{"id": "random/1", "response": "Yes"}])
    assert main(["score", "pope", "--predictions", str(predictions), "--dataset", "questions"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["score", "pope", "--predictions", str(predictions)]) == 2
    assert "questions: required field is missing" in capsys.readouterr().err
    assert main(["score", "pope", "--predictions", str(predictions), "--dataset", f"questions={tmp_path}"]) == 2
    assert "coco_pope_random.json: file not found" in capsys.readouterr().err
    assert main(["score", "pope", "--predictions", str(predictions), "--dataset", f"questions={FIXTURES / 'pope'}",
                 "--dataset", "split=random"]) == 2
    assert "pope.split: unknown field; did you mean 'splits'?" in capsys.readouterr().err
    twice = write_jsonl(tmp_path / "twice.jsonl", [{"id": "random/1", "response": "Yes"}] * 2)
    assert main(["score", "pope", "--predictions", str(twice), "--dataset", f"questions={FIXTURES / 'pope'}"]) == 2
    assert "appears twice" in capsys.readouterr().err


def test_predict_with_a_tiny_llava_on_local_images(tiny_llava, tmp_path, image_file):
    from distillbench.core.recipe import validate_options
    from distillbench.kinds.vlm.models import load_vlm

    model, processor = load_vlm(str(tiny_llava))
    images = tmp_path / "images"
    for seed, name in enumerate(["COCO_val2014_000000310196.jpg", "COCO_val2014_000000210789.jpg"]):
        image_file(images / name, seed)
    benchmark, problems = validate_options(BENCHMARKS.get("pope"), {"questions": str(FIXTURES / "pope"),
                                                                    "images": str(images), "max_new_tokens": 4},
                                           "pope")
    assert not problems
    items = benchmark.items()
    outputs = benchmark.predict(model, processor, items, batch_size=5)
    assert len(outputs) == len(items) == 12 and all(isinstance(o, str) for o in outputs)
    assert [benchmark.score(item, output).values for item, output in zip(items, outputs)]
    # CHAIR reads the file names from the instances file; one picture serves all three images here.
    for name in ("COCO_val2014_000000000139.jpg", "COCO_val2014_000000000285.jpg", "COCO_val2014_000000000632.jpg"):
        image_file(images / name, 7)
    captioning, problems = validate_options(BENCHMARKS.get("chair"), {"annotations": str(FIXTURES / "chair"),
                                                                      "images": str(images), "max_new_tokens": 3},
                                            "chair")
    assert not problems and len(captioning.predict(model, processor, captioning.items(), batch_size=2)) == 3
    # VideoHallucer: frames of each video as images, two replies (basic, hallucinated) per pair.
    data, _ = videohallucer_data(tmp_path)
    pairs = videohallucer.load_pairs(data / videohallucer.CATEGORIES["obj_rel"])[:2]
    for pair in pairs:
        for side in ("basic", "hallucination"):
            stem = Path(pair[side]["video"]).stem
            for frame in range(3):
                image_file(data / "object_relation" / "videos" / stem / f"{frame}.png", frame)
    video, problems = validate_options(BENCHMARKS.get("videohallucer"), {"data": str(data), "categories": ["obj_rel"],
                                                                         "n": 2, "frames": 2, "max_new_tokens": 3},
                                       "videohallucer")
    assert not problems
    replies = video.predict(model, processor, video.items(), batch_size=4)
    assert len(replies) == 2 and all(len(reply) == 2 for reply in replies)
    assert video.score(video.items()[0], replies[0]).values


def test_chair_draws_its_images_from_val2014_when_train2014_is_loaded_too(tmp_path):
    from distillbench.benchmarks.vlm.benchmarks import CHAIR

    folder = tmp_path / "coco"
    shutil.copytree(FIXTURES / "chair", folder)
    train = {"images": [{"id": 9, "file_name": "COCO_train2014_000000000009.jpg"}],
             "annotations": [{"image_id": 9, "category_id": 1}],
             "categories": json.loads((folder / "instances_val2014.json").read_text())["categories"]}
    (folder / "instances_train2014.json").write_text(json.dumps(train))
    (folder / "captions_train2014.json").write_text(json.dumps({"images": train["images"], "annotations": [
        {"image_id": 9, "caption": "a person"}]}))
    ids = [item["image_id"] for item in CHAIR(annotations=str(folder)).items()]
    val = [image["id"] for image in json.loads((folder / "instances_val2014.json").read_text())["images"]]
    assert ids == sorted(val) and 9 not in ids
