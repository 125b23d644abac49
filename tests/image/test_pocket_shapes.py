"""pocket-shapes: deterministic scenes, disjoint splits, GenEval's metadata format, exact detection."""

import json
import random

import numpy as np
import pytest

from distillbench.benchmarks.geneval import relative_position
from distillbench.pocket import shapes
from distillbench.pocket.shapes import (COLORS, PALETTE, SHAPES, TAGS, Shape, Scene, evaluation_metadata, generate,
                                        metadata_for, scene_for, shape_mask, side_range, split_of)
from distillbench.pocket.shapes_detector import detect


def _real_metadata(shared_data):
    return [json.loads(line) for line in (shared_data / "geneval" / "evaluation_metadata.jsonl").read_text().splitlines()]


def test_metadata_has_the_fields_and_key_order_of_genevals_file(shared_data):
    real = _real_metadata(shared_data)
    real_keys = {row["tag"]: list(row) for row in real}
    real_clauses = {row["tag"]: {tuple(clause) for clause in row["include"]} for row in real}
    assert set(real_keys) == set(TAGS)
    ours = evaluation_metadata(per_tag=30)
    for row in ours:
        assert list(row) == real_keys[row["tag"]], row  # same keys, same order (exclude only for counting)
        assert {tuple(clause) for clause in row["include"]} <= real_clauses[row["tag"]], row
        assert all(clause["class"] in SHAPES for clause in row["include"] + row.get("exclude", []))
        assert all(clause.get("color", "red") in COLORS for clause in row["include"])
    real_colors = {clause["color"] for row in real for clause in row["include"] if "color" in clause}
    real_relations = {clause["position"][0] for row in real for clause in row["include"] if "position" in clause}
    assert real_colors == set(COLORS)
    assert real_relations == set(shapes.POSITIONS)
    # GenEval's conventions, checked on its own file: counting excludes N+1, position targets clause 0.
    for row in real + ours:
        if row["tag"] == "counting":
            assert row["exclude"] == [{"class": row["include"][0]["class"], "count": row["include"][0]["count"] + 1}]
            assert 2 <= row["include"][0]["count"] <= 4
        if row["tag"] == "position":
            assert row["include"][1]["position"][1] == 0 and "position" not in row["include"][0]


def test_prompts_follow_genevals_templates():
    rng = random.Random(3)
    prompts = {tag: metadata_for(tag, rng)["prompt"] for tag in TAGS for _ in range(20)}
    assert all(p.startswith("a photo of ") for p in prompts.values())
    counting = [metadata_for("counting", random.Random(s)) for s in range(30)]
    assert {"a photo of two circles", "a photo of four triangles"} & {m["prompt"] for m in counting}
    orange = metadata_for("colors", random.Random(0))
    assert shapes.with_article("orange") == "an orange" and shapes.make_plural("bus") == "buses"
    assert orange["prompt"] == f"a photo of {shapes.with_article(orange['include'][0]['color'])} {orange['include'][0]['class']}"


def test_evaluation_metadata_is_distinct_per_tag_and_deterministic():
    prompts = evaluation_metadata(per_tag=24)
    assert prompts == evaluation_metadata(per_tag=24)
    by_tag = {tag: [p["prompt"] for p in prompts if p["tag"] == tag] for tag in TAGS}
    assert len(by_tag["single_object"]) == 3 and len(by_tag["two_object"]) == 6 and len(by_tag["counting"]) == 9
    assert all(len(v) == len(set(v)) for v in by_tag.values())
    assert len(by_tag["position"]) == 24 and len(by_tag["color_attr"]) == 24
    assert [p["tag"] for p in prompts] == sorted((p["tag"] for p in prompts), key=TAGS.index)


def test_scenes_are_deterministic_and_sized():
    assert [s.record() for s in generate("train", 40, seed=1)] == [s.record() for s in generate("train", 40, seed=1)]
    assert generate("train", 40, seed=1) != generate("train", 40, seed=2)
    for image_size in (32, 48):
        for scene in generate("test", 30, image_size=image_size):
            image = scene.render()
            assert image.shape == (image_size, image_size, 3) and image.dtype == np.uint8
            assert 1 <= len(scene.shapes) <= 4
            low, high = side_range(image_size)
            assert all(low <= s.side <= high and 0 <= s.x <= image_size - s.side for s in scene.shapes)


def test_splits_are_disjoint_by_construction():
    train = {s.digest for s in generate("train", 600)}
    test = {s.digest for s in generate("test", 150)}
    assert not train & test
    assert all(split_of(s) == "test" for s in generate("test", 50))
    with pytest.raises(ValueError, match="unknown split"):
        generate("dev", 3)


def test_every_scene_satisfies_its_metadata_under_genevals_position_rule():
    for scene in generate("train", 400):
        metadata = scene.metadata
        for clause in metadata["include"]:
            drawn = [s for s in scene.shapes if s.kind == clause["class"]]
            assert len(drawn) == clause["count"]
            if "color" in clause:
                assert all(s.color == clause["color"] for s in drawn)
            if "position" in clause:
                target = [s for s in scene.shapes if s.kind == metadata["include"][0]["class"]][0]
                # exactly the prompted relation, so the caption is unambiguous
                assert relative_position(drawn[0].box, target.box) == [clause["position"][0]]
        assert len(scene.shapes) == sum(c["count"] for c in metadata["include"])


def test_captions_name_every_shape_left_to_right():
    scene = Scene((Shape("square", "blue", 20, 3, 6), Shape("circle", "orange", 2, 10, 6)),
                  {"tag": "two_object", "include": [], "prompt": ""})
    assert scene.caption == "a photo of an orange circle and a blue square"
    position = scene_for({"tag": "position", "include": [{"class": "square", "count": 1},
                                                         {"class": "circle", "count": 1, "position": ["above", 0]}],
                          "prompt": "a photo of a circle above a square"}, random.Random(0))
    circle, square = position.shapes[1], position.shapes[0]
    assert position.caption == f"a photo of {shapes.with_article(circle.color)} circle above " \
                               f"{shapes.with_article(square.color)} square"


def test_the_three_masks_differ_and_fill_their_box_at_every_allowed_side():
    for side in range(5, 24):
        masks = {kind: shape_mask(kind, side) for kind in SHAPES}
        assert all(m.any(0).all() and m.any(1).all() for m in masks.values())
        assert not any((masks[a] == masks[b]).all() for a in SHAPES for b in SHAPES if a < b)


def test_detector_is_exact_on_clean_renders():
    scenes = generate("train", 150) + generate("test", 40, image_size=64)
    for scene in scenes:
        found = sorted((d.shape, d.color, d.box, d.confidence) for d in detect(scene.render()))
        assert found == sorted((s.kind, s.color, s.box, 1.0) for s in scene.shapes)


def test_detector_masks_and_tolerances():
    scene = Scene((Shape("triangle", "pink", 4, 4, 9), Shape("circle", "white", 18, 18, 10)),
                  {"tag": "two_object", "include": [], "prompt": ""})
    image = scene.render()
    detections = {d.shape: d for d in detect(image)}
    assert detections["triangle"].mask.sum() == shape_mask("triangle", 9).sum()
    # small pixel noise keeps the answer; a colour far from the palette lowers the confidence
    noisy = np.clip(image.astype(int) + np.random.default_rng(0).integers(-12, 13, image.shape), 0, 255)
    assert sorted((d.shape, d.color, d.box) for d in detect(noisy.astype(np.uint8))) == \
        sorted((d.shape, d.color, d.box) for d in detections.values())
    washed = image.copy()
    washed[4:13, 4:13][shape_mask("triangle", 9)] = (np.array(PALETTE["pink"]) * 0.6 + 128 * 0.4).astype(np.uint8)
    faded = {d.shape: d for d in detect(washed)}["triangle"]
    assert faded.color == "pink" and faded.confidence < 0.5


def test_detector_drops_specks_and_scores_a_damaged_silhouette_lower():
    image = np.full((32, 32, 3), shapes.BACKGROUND, dtype=np.uint8)
    image[3:5, 3:4] = PALETTE["red"]  # two pixels: a speck, not an object
    image[10:20, 10:20] = PALETTE["green"]
    image[10:15, 10:15] = shapes.BACKGROUND  # a square with a bite taken out
    [detection] = detect(image)
    assert detection.color == "green" and 0.3 < detection.confidence < 0.9


def test_write_geneval_folder_uses_genevals_layout(tmp_path):
    prompts = evaluation_metadata(per_tag=2)
    folder = shapes.write_geneval_folder(prompts, tmp_path / "images", samples_per_prompt=2)
    assert sorted(p.name for p in folder.iterdir())[:2] == ["00000", "00001"]
    assert json.loads((folder / "00001" / "metadata.jsonl").read_text()) == prompts[1]
    assert sorted(p.name for p in (folder / "00001" / "samples").iterdir()) == ["0000.png", "0001.png"]
