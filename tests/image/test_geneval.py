"""GenEval's rules (djghosh13/geneval evaluate_images.py), case by case, and on GenEval's own prompts."""

import json

import numpy as np
import pytest

from distillbench.benchmarks.geneval import (COLORS, Detection, GenEvalRules, compute_iou, evaluate, folder_items,
                                             main, pocket_detector, relative_position, score_detections,
                                             score_folder, select_objects, summary_scores)
from distillbench.pocket import shapes


def box(x, y, w=10, h=10):
    return (x, y, x + w, y + h)


def det(label, b, score=0.99, color=None):
    return Detection(label, b, score, None, color)


COUNT_TWO = {"tag": "counting", "include": [{"class": "clock", "count": 2}],
             "exclude": [{"class": "clock", "count": 3}], "prompt": "a photo of two clocks"}


def test_confidence_must_be_strictly_above_the_threshold():
    kept = select_objects([det("cup", box(0, 0), 0.3), det("cup", box(20, 0), 0.3001)], "single_object")
    assert [d.score for d in kept["cup"]] == [0.3001]
    assert select_objects([det("cup", box(0, 0), 0.3)], "single_object") == {}
    metadata = {"tag": "single_object", "include": [{"class": "cup", "count": 1}], "prompt": "a photo of a cup"}
    assert evaluate(select_objects([det("cup", box(0, 0), 0.29)], "single_object"), metadata) == \
        (False, "expected cup>=1, found 0")


def test_scores_are_compared_with_the_threshold_in_float32():
    """mmdet gives GenEval float32 scores and NumPy compares them with the Python-float threshold in
    float32 (evaluate_images.py line 233 at af4902f): a score of float32(0.3) is not above 0.3 there,
    though as a Python float (0.30000001...) it is."""
    at_threshold = float(np.float32(0.3))
    assert at_threshold > 0.3
    assert select_objects([det("cup", box(0, 0), at_threshold)], "single_object") == {}
    just_above = float(np.nextafter(np.float32(0.3), np.float32(1)))
    assert [d.score for d in select_objects([det("cup", box(0, 0), just_above)], "single_object")["cup"]] == [just_above]
    # 0.9000000001 > 0.9 in float64, but it rounds to float32(0.9): not above the counting threshold
    assert select_objects([det("clock", box(0, 0), 0.9000000001)], "counting") == {}
    assert len(select_objects([det("clock", box(0, 0), 0.9000000001)], "two_object")["clock"]) == 1
    # GenEval's own expression on a float32 score column, as mmdet returns it
    scores = [0.29, at_threshold, just_above, 0.3000000001, 0.31]
    column = np.array(scores, dtype=np.float32)
    official = sorted(float(s) for s in column[column > 0.3])
    kept = select_objects([det("cup", box(20 * i, 0), s) for i, s in enumerate(scores)], "single_object")["cup"]
    assert sorted(float(np.float32(d.score)) for d in kept) == official == [float(np.float32(just_above)),
                                                                             float(np.float32(0.31))]


def test_counting_uses_the_0_9_threshold_and_exclude_means_exactly_n():
    two_sure_one_unsure = [det("clock", box(0, 0), 0.95), det("clock", box(20, 0), 0.92), det("clock", box(0, 20), 0.85)]
    # 0.85 is dropped for counting (threshold 0.9): exactly two clocks
    assert score_detections(two_sure_one_unsure, COUNT_TWO)["correct"]
    # the same detections under another tag keep all three
    assert len(select_objects(two_sure_one_unsure, "two_object")["clock"]) == 3
    three_sure = two_sure_one_unsure[:2] + [det("clock", box(0, 20), 0.91)]
    assert score_detections(three_sure, COUNT_TWO)["reason"] == "expected clock<3, found 3"
    one = score_detections(two_sure_one_unsure[:1], COUNT_TWO)
    assert (one["correct"], one["reason"]) == (False, "expected clock>=2, found 1")
    assert GenEvalRules.from_options({"counting_threshold": "0.8"}).counting_threshold == 0.8
    assert score_detections(two_sure_one_unsure, COUNT_TWO, rules=GenEvalRules(counting_threshold=0.8))["reason"] \
        == "expected clock<3, found 3"


def test_at_most_16_objects_per_class_most_confident_first():
    many = [det("kite", box(3 * i, 0), 0.5 + i / 100) for i in range(20)]
    kept = select_objects(many, "single_object")["kite"]
    assert len(kept) == 16 and kept[0].score == pytest.approx(0.69) and kept[-1].score == pytest.approx(0.54)
    assert len(select_objects(many, "single_object", GenEvalRules(max_objects=4))["kite"]) == 4


def test_overlap_suppression_is_off_by_default_and_uses_genevals_iou():
    overlapping = [det("dog", (0, 0, 9, 9), 0.9), det("dog", (1, 1, 10, 10), 0.8), det("dog", (30, 30, 39, 39), 0.7)]
    assert len(select_objects(overlapping, "single_object")["dog"]) == 3
    assert compute_iou((0, 0, 9, 9), (1, 1, 10, 10)) == pytest.approx(81 / 119)  # +1 pixel convention
    assert [d.score for d in select_objects(overlapping, "single_object", GenEvalRules(max_overlap=0.5))["dog"]] == [0.9, 0.7]
    assert len(select_objects(overlapping, "single_object", GenEvalRules(max_overlap=0.7))["dog"]) == 3


def test_relative_position_margin_and_normalisation():
    a = box(0, 0)
    assert relative_position(a, box(9, 0)) == ["left of"]  # offset −9, shrunk by 0.1·(10+10) to −7
    assert relative_position(box(9, 0), a) == ["right of"]
    assert relative_position(a, box(1.5, 0)) == []  # the shift is inside the margin: no relation
    # past the margin is not enough: the shrunk offset is divided by the raw one, so a pure
    # horizontal shift counts only when |d| − 2 > 0.5·|d|, i.e. |d| > 4 here
    assert relative_position(a, box(3.9, 0)) == []
    assert relative_position(a, box(4.1, 0)) == ["left of"]
    assert relative_position(a, box(10, 10)) == ["left of", "above"]  # (−8, −8)/14.1 = −0.57 on both axes
    assert relative_position(a, box(6, 6)) == []  # (−4, −4)/8.5 = −0.47: clearly up-left, yet no relation
    assert relative_position(a, box(10, 4)) == ["left of"]  # (−8, −2)/10.8: only the horizontal component counts
    assert relative_position(box(0, 20), a) == ["below"]
    # the margin scales with both objects' sizes
    assert relative_position(box(0, 0, 40, 10), box(9, 0)) == []
    assert relative_position(a, box(4.1, 0), position_threshold=0.2) == []


POSITION = {"tag": "position", "include": [{"class": "cow", "count": 1},
                                           {"class": "laptop", "count": 1, "position": ["left of", 0]}],
            "prompt": "a photo of a laptop left of a cow"}


def test_position_rule_checks_the_most_confident_objects_against_the_target_group():
    assert score_detections([det("cow", box(30, 0)), det("laptop", box(0, 0))], POSITION)["correct"]
    wrong = score_detections([det("cow", box(0, 0)), det("laptop", box(30, 0))], POSITION)
    assert wrong["reason"] == "expected laptop left of target, found right of target"
    inside_margin = score_detections([det("cow", box(1, 0)), det("laptop", box(0, 0))], POSITION)
    assert inside_margin["reason"] == "expected laptop left of target, found  target"
    no_target = score_detections([det("laptop", box(0, 0))], POSITION)
    assert no_target["reason"] == "expected cow>=1, found 0\nno target for laptop to be left of"
    # only the most confident laptop is placed: a second, wrongly placed, less confident one does not matter
    extra = [det("cow", box(30, 0)), det("laptop", box(0, 0), 0.9), det("laptop", box(50, 0), 0.8)]
    assert score_detections(extra, POSITION)["correct"]
    extra[2] = det("laptop", box(50, 0), 0.95)
    assert not score_detections(extra, POSITION)["correct"]


def test_colour_is_checked_on_the_most_confident_objects_only():
    red_car = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}], "prompt": "a photo of a red car"}
    detections = [det("car", box(0, 0), 0.9, "blue"), det("car", box(20, 0), 0.8, "red")]
    result = score_detections(detections, red_car)
    assert (result["correct"], result["reason"]) == (False, "expected red car>=1, found 0 red; and 1 blue")
    assert score_detections([det("car", box(0, 0), 0.7, "red"), det("car", box(20, 0), 0.6, "blue")], red_car)["correct"]
    attr = {"tag": "color_attr", "include": [{"class": "bus", "count": 1, "color": "green"},
                                             {"class": "cup", "count": 1, "color": "purple"}], "prompt": ""}
    swapped = score_detections([det("bus", box(0, 0), color="purple"), det("cup", box(20, 0), color="green")], attr)
    assert swapped["reason"] == ("expected green bus>=1, found 0 green; and 1 purple\n"
                                 "expected purple cup>=1, found 0 purple; and 1 green")
    with pytest.raises(ValueError, match="colour classifier"):
        score_detections([det("car", box(0, 0))], red_car)
    # a pluggable classifier sees the image, the kept objects and the class name
    seen = []

    def classifier(image, objects, classname):
        seen.append((image, [o.score for o in objects], classname))
        return ["red"] * len(objects)

    assert score_detections(detections, red_car, image="IMAGE", classify_colors=classifier)["correct"]
    assert seen == [("IMAGE", [0.9], "car")]


def test_records_have_genevals_fields():
    record = score_detections([det("cow", box(30, 0), 0.8), det("laptop", box(0, 0), 0.7)], POSITION, filename="x.png")
    assert list(record) == ["filename", "tag", "prompt", "correct", "reason", "metadata", "details"]
    assert json.loads(record["metadata"]) == POSITION
    assert json.loads(record["details"]) == {"cow": [[30, 0, 40, 10, 0.8]], "laptop": [[0, 0, 10, 10, 0.7]]}


def test_overall_is_the_mean_over_tasks_not_over_images():
    records = ([{"tag": "single_object", "metadata": "a", "correct": True}] * 9
               + [{"tag": "counting", "metadata": "b", "correct": False},
                  {"tag": "counting", "metadata": "b", "correct": True}])
    summary = summary_scores(records)
    assert summary["tasks"] == {"single_object": 1.0, "counting": 0.5}
    assert summary["overall"] == 0.75 and summary["correct_images"] == pytest.approx(10 / 11)
    assert summary["prompts"] == 2 and summary["correct_prompts"] == 1.0  # a prompt counts when any image is correct
    with pytest.raises(ValueError):
        summary_scores([])


def _oracle_detections(metadata):
    """Detections that satisfy one GenEval prompt: objects in a row, each clause's objects
    placed to the right of, left of, above or below clause 0's as asked."""
    detections, x = [], 0
    for clause in metadata["include"]:
        for _ in range(clause["count"]):
            b = box(x, 100)
            if "position" in clause:
                dx, dy = {"left of": (-50, 0), "right of": (50, 0), "above": (0, -50), "below": (0, 50)}[clause["position"][0]]
                target = detections[0].box
                b = box(target[0] + dx, target[1] + dy)
            detections.append(det(clause["class"], b, 0.95, clause.get("color", "red")))
            x += 20
    return detections


def test_genevals_own_553_prompts(shared_data):
    lines = (shared_data / "geneval" / "evaluation_metadata.jsonl").read_text().splitlines()
    prompts = [json.loads(line) for line in lines]
    classes = set((shared_data / "geneval" / "object_names.txt").read_text().split("\n")) - {""}
    assert len(prompts) == 553 and len(classes) == 80
    assert {c["class"] for p in prompts for c in p["include"]} <= classes
    records = [score_detections(_oracle_detections(p), p) for p in prompts]
    assert all(r["correct"] for r in records), [r for r in records if not r["correct"]][:2]
    summary = summary_scores(records)
    assert summary["tasks"] == {tag: 1.0 for tag in ["single_object", "two_object", "counting", "colors", "position",
                                                      "color_attr"]}
    # drop the last object of every prompt: every prompt fails, each with GenEval's reason
    broken = [score_detections(_oracle_detections(p)[:-1], p) for p in prompts]
    assert not any(r["correct"] for r in broken)
    assert all(r["reason"].startswith("expected") or r["reason"].startswith("no target") for r in broken)


def test_pocket_oracle_images_score_one_and_colour_swaps_fail(tmp_path):
    prompts = shapes.evaluation_metadata(per_tag=4)
    folder = shapes.write_geneval_folder(prompts, tmp_path / "images", samples_per_prompt=2)
    assert len(folder_items(folder)) == 2 * len(prompts)
    records = score_folder(folder, pocket_detector())
    assert all(r["correct"] for r in records), [r for r in records if not r["correct"]][:2]
    assert summary_scores(records)["overall"] == 1.0
    # recolour every sample of the colour tasks: those fail, the others still pass
    from PIL import Image

    for path, metadata in folder_items(folder):
        if metadata["tag"] in ("colors", "color_attr"):
            image = np.asarray(Image.open(path)).copy()
            for clause in metadata["include"]:
                wrong = COLORS[(COLORS.index(clause["color"]) + 1) % len(COLORS)]
                image[(image == shapes.PALETTE[clause["color"]]).all(-1)] = shapes.PALETTE[wrong]
            Image.fromarray(image).save(path)
    tasks = summary_scores(score_folder(folder, pocket_detector()))["tasks"]
    assert tasks["colors"] == 0.0 and tasks["color_attr"] == 0.0 and tasks["counting"] == 1.0


def test_command_line_writes_genevals_results_and_the_summary(tmp_path, capsys):
    folder = shapes.write_geneval_folder(shapes.evaluation_metadata(per_tag=1), tmp_path / "images", 1)
    outfile = tmp_path / "out" / "results.jsonl"
    assert main([str(folder), "--outfile", str(outfile), "--options", "threshold=0.5"]) == 0
    assert "Overall score (avg. over tasks): 1.00000" in capsys.readouterr().out
    assert len(outfile.read_text().splitlines()) == 6
    summary = json.loads(outfile.with_suffix(".summary.json").read_text())
    assert summary["protocol"]["threshold"] == 0.5 and summary["protocol"]["detector"] == "pocket"
    assert main([str(folder), "--outfile", str(outfile), "--options", "thresold=0.5"]) == 2
    assert "unknown GenEval option" in capsys.readouterr().err
