"""pocket-vqa, pocket-pope, pocket-chair and pocket-videohallucer: registered in the vlm family, scored by
the real benchmarks' scorers through `distillbench score` (gold looked up by id), and predicted by a LLaVA."""

import json

import pytest

from distillbench.benchmarks.vlm import benchmarks as real
from distillbench.cli.main import main
from distillbench.core.registry import BENCHMARKS
from distillbench.pocket import shapes_vlm as world

POCKET = {"pocket-vqa": real.VQAv2, "pocket-pope": real.POPE, "pocket-chair": real.CHAIR,
          "pocket-videohallucer": real.VideoHallucer}


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def score(tmp_path, benchmark, records, *dataset):
    tmp_path.mkdir(parents=True, exist_ok=True)
    predictions = write_jsonl(tmp_path / f"{benchmark}.jsonl", records)
    out = tmp_path / f"out-{benchmark}"
    argv = ["score", benchmark, "--predictions", str(predictions), "--out", str(out)]
    for option in dataset:
        argv += ["--dataset", option]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    return {name: metric["mean"] for name, metric in results["metrics"].items()}, results


def test_registered_in_the_vlm_family_with_the_real_benchmarks_metrics():
    assert set(POCKET) <= {e.name for e in BENCHMARKS.entries("vlm")}
    for name, real_class in POCKET.items():
        definitions = BENCHMARKS.get(name).metric_definitions()
        expected = real_class.metric_definitions()
        assert definitions == expected, name


def test_pocket_vqa_scores_with_the_vqav2_rules(tmp_path):
    items = world.vqa_items(20)
    got, results = score(tmp_path, "pocket-vqa", [{"id": i["id"], "response": i["multiple_choice_answer"]}
                                                  for i in items], "n=20")
    assert got["accuracy"] > 0.98 and results["metrics"]["accuracy"]["n"] == len(items)
    assert results["protocol"]["prompt"] == "{question}" and results["protocol"]["split"] == "test"
    wrong, _ = score(tmp_path / "wrong", "pocket-vqa", [{"id": i["id"], "response": "purple"} for i in items], "n=20")
    assert wrong["accuracy"] < 0.2
    number = next(i for i in items if i["answer_type"] == "number" and len(set(i["answers"])) > 1)
    from distillbench.benchmarks.vlm import vqa

    word = world.NUMBERS[int(vqa.normalize_answer(number["multiple_choice_answer"]))]
    assert real.score_vqa_item(number, word, "2021").values["accuracy"] == pytest.approx(
        real.score_vqa_item(number, number["multiple_choice_answer"], "2021").values["accuracy"])


def test_pocket_pope_scores_with_the_official_parsing(tmp_path):
    items = world.pope_items(10)
    perfect, _ = score(tmp_path, "pocket-pope", [{"id": i["id"], "response": i["label"].capitalize() + "."}
                                                 for i in items], "n=10")
    assert perfect["average/f1"] == 1.0 and perfect["average/yes_ratio"] == 0.5
    always_yes, results = score(tmp_path / "yes", "pocket-pope", [{"id": i["id"], "response": "Yes"} for i in items
                                                                 if i["split"] == "adversarial"],
                                "n=10", "splits=[adversarial]")
    assert always_yes["adversarial/yes_ratio"] == 1.0 and always_yes["adversarial/precision"] == 0.5
    assert always_yes["average/f1"] == pytest.approx(2 / 3)
    assert results["protocol"]["splits"] == ["adversarial"]


def test_pocket_chair_counts_synonyms_and_hallucinations(tmp_path):
    items = world.chair_items(10)
    exact, _ = score(tmp_path, "pocket-chair", [{"id": i["id"], "response": i["reference_caption"]} for i in items],
                     "n=10")
    assert exact == {"chair_s": 0.0, "chair_i": 0.0, "recall": 1.0}
    records = []
    for item in items:
        absent = next(world.object_name(o) for o in world.OBJECTS if world.object_name(o) not in item["ground_truth"])
        color, kind = absent.split()
        records.append({"id": item["id"], "response": f"{item['reference_caption']} and a {world.COLOR_SYNONYMS[color][0]}"
                                                      f" {world.SHAPE_SYNONYMS[kind][0]}"})
    hallucinating, results = score(tmp_path / "h", "pocket-chair", records, "n=10")
    assert hallucinating["chair_s"] == 1.0 and hallucinating["recall"] == 1.0
    mentions = sum(len(set(i["ground_truth"])) for i in items)  # each reference names every object once
    assert hallucinating["chair_i"] == pytest.approx(len(items) / (mentions + len(items)))
    assert "hallucinated:" in results["per_item"][0]["reason"]


def test_pocket_videohallucer_pairs(tmp_path):
    items = world.videohallucer_items(5)
    perfect, _ = score(tmp_path, "pocket-videohallucer", [{"id": i["id"], "response": ["Yes.", "No."]} for i in items],
                       "n=5")
    assert perfect["overall/accuracy"] == 1.0 and perfect["bias/yes_difference"] == 0.0
    yes_man, _ = score(tmp_path / "y", "pocket-videohallucer", [{"id": i["id"], "response": ["yes", "yes"]}
                                                               for i in items], "n=5")
    assert yes_man["overall/basic_accuracy"] == 1.0 and yes_man["overall/halluc_accuracy"] == 0.0
    assert yes_man["bias/yes_difference"] == 0.5 and yes_man["bias/hallucination_score"] == 1.0


def test_unknown_ids_and_bad_options_are_input_errors(tmp_path, capsys):
    predictions = write_jsonl(tmp_path / "p.jsonl", [{"id": "random/99999", "response": "Yes"}])
    assert main(["score", "pocket-pope", "--predictions", str(predictions), "--dataset", "n=2"]) == 2
    assert "not in the pocket-pope dataset" in capsys.readouterr().err
    assert main(["score", "pocket-pope", "--predictions", str(predictions), "--dataset", "splits=[popularr]"]) == 2
    assert "splits" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(POCKET))
def test_predict_with_a_llava(tiny_llava, name):
    from distillbench.kinds.vlm.models import load_vlm

    model, processor = load_vlm(str(tiny_llava))
    benchmark = BENCHMARKS.get(name)(n=2, max_new_tokens=3)
    items = benchmark.items()[:4]
    outputs = benchmark.predict(model, processor, items, batch_size=4)
    assert len(outputs) == len(items)
    for item, output in zip(items, outputs):
        if name == "pocket-videohallucer":
            assert len(output) == 2
        assert benchmark.score(item, output).values
