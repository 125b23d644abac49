"""The pocket-shapes VLM world: deterministic, split-disjoint items for pocket VQA, POPE, CHAIR and
VideoHallucer, built from the scene as drawn (the programmatic detector agrees with every item)."""

import random
from collections import Counter

import numpy as np
import pytest

from distillbench.benchmarks.vlm import chair, vqa
from distillbench.pocket import shapes_vlm as world
from distillbench.pocket.shapes_detector import detect


def test_scenes_are_deterministic_and_the_splits_disjoint():
    test = world.scenes("test", 40)
    world.scenes.cache_clear()
    assert [s.digest for s in world.scenes("test", 40)] == [s.digest for s in test]
    train = world.scenes("train", 400)
    assert not {s.digest for s in train} & {s.digest for s in test}
    assert all(1 <= len(s.shapes) <= 4 for s in train)
    # The themes skew the statistics: the most frequent object is in far more scenes than the least.
    frequency, together = world.object_statistics()
    counts = sorted(frequency.get(obj, 0) for obj in world.OBJECTS)
    assert counts[-1] > 5 * max(1, counts[0])
    assert together[(("red", "circle"), ("yellow", "circle"))] == together[(("yellow", "circle"), ("red", "circle"))]


def test_items_render_what_they_describe():
    for item in world.vqa_items(10)[:10] + world.chair_items(10):
        image = np.asarray(world.render_payload(item["scene"]))
        assert image.shape == (32, 32, 3)
        found = sorted((d.color, d.shape) for d in detect(image))
        assert found == sorted((color, kind) for kind, color, *_ in item["scene"])


def test_vqa_annotators_disagree_realistically_and_the_majority_scores_high():
    items = world.vqa_items(100)
    assert items == world.vqa_items(100)
    assert len({item["id"] for item in items}) == len(items)
    assert all(len(item["answers"]) == 10 for item in items)
    assert {item["answer_type"] for item in items} == {"number", "other", "yes/no"}
    answers = Counter(answer for item in items for answer in item["answers"])
    assert {"two", "left side", "a circle"} & set(answers) and answers["yes"] and answers["no"]
    assert 0.2 < sum(world.entropy_of(item["answers"]) > 0 for item in items) / len(items) < 0.8
    accuracy = [vqa.question_accuracy(item["multiple_choice_answer"], item["answers"]) for item in items]
    assert np.mean(accuracy) > 0.98
    # "two" matches annotators who wrote "2" once the answers disagree (VQA's number words).
    assert vqa.question_accuracy("two", ["2"] * 8 + ["two", "3"]) == 1.0


def test_ambiguous_positions_split_the_annotators():
    rng = random.Random(0)
    clear = world.annotator_answers("side", -0.7, rng, annotators=200)
    ambiguous = world.annotator_answers("side", 0.02, rng, annotators=200)
    normalize = vqa.normalize_answer
    assert Counter(normalize(a) for a in clear).most_common(1)[0][1] > 160
    votes = Counter(normalize(a) for a in ambiguous)
    assert votes["left"] > 20 and votes["right"] > 20 and votes["middle"] + votes["center"] > 20
    assert Counter(world.annotator_answers("relation", 0.0, rng, annotators=200))["yes"] in range(70, 131)


def test_pope_negatives_follow_the_three_strategies():
    items = world.pope_items(30)
    frequency, together = world.object_statistics()
    by_split = {split: [item for item in items if item["split"] == split] for split in world.POPE_SPLITS}
    # The same images in every split, half yes and half no per image, negatives absent from the image.
    assert [i["image"] for i in by_split["random"]] == [i["image"] for i in by_split["adversarial"]]
    for item in items:
        present = {f"{color} {kind}" for kind, color, *_ in item["scene"]}
        assert (item["object"] in present) == (item["label"] == "yes")
        assert item["text"].startswith("Is there ") and item["text"].endswith(" in the image?")
    for split, split_items in by_split.items():
        labels = Counter(item["label"] for item in split_items)
        assert labels["yes"] == labels["no"]
        assert [i["question_id"] for i in split_items] == list(range(1, len(split_items) + 1))
    order = world.popular_order(frequency)
    for item in by_split["popular"]:
        if item["label"] == "no":
            present = {(color, kind) for kind, color, *_ in item["scene"]}
            most_frequent_absent = next(obj for obj in order if obj not in present)
            assert frequency[most_frequent_absent] >= frequency[tuple(item["object"].split())]

    def co_occurrence(item):
        present = {(color, kind) for kind, color, *_ in item["scene"]}
        return sum(together.get((p, tuple(item["object"].split())), 0) for p in present)

    adversarial = np.mean([co_occurrence(i) for i in by_split["adversarial"] if i["label"] == "no"])
    random_ = np.mean([co_occurrence(i) for i in by_split["random"] if i["label"] == "no"])
    assert adversarial > 2 * random_


def test_chair_reads_pocket_synonyms_as_chair_reads_coco():
    vocabulary = world.chair_vocabulary()
    found = chair.caption_objects("A photo of two crimson discs, a navy box and an ivory wedge.", vocabulary)
    assert found.categories == ("red circle", "blue square", "white triangle")
    assert chair.caption_objects("A red circle, a dot and a circle.", vocabulary).categories == ("red circle",)
    for item in world.chair_items(30):
        record = chair.score_caption(item["reference_caption"], item["ground_truth"], vocabulary)
        assert record["chair_s"] == 0 and record["recall"] == 1.0
    item = world.chair_items(1)[0]
    absent = next(world.object_name(o) for o in world.OBJECTS if world.object_name(o) not in item["ground_truth"])
    record = chair.score_caption(f"{item['reference_caption']} and a {absent}", item["ground_truth"], vocabulary)
    assert record["chair_s"] == 1 and record["hallucinated"] == [(absent, absent)]
    # COCO's tables are unchanged by the vocabulary argument.
    assert chair.caption_objects("A dog on a toilet seat.").categories == ("dog", "toilet")


def test_video_pairs_are_true_and_false_in_every_frame():
    items = world.videohallucer_items(20)
    assert items == world.videohallucer_items(20)
    assert Counter(item["category"] for item in items) == {c: 20 for c in world.VIDEO_CATEGORIES}
    for item in items:
        assert len(item["frames"]) == world.FRAMES
        assert (item["basic"]["answer"], item["hallucination"]["answer"]) == ("yes", "no")
        frames = [[(color, kind, x + side / 2, y + side / 2) for kind, color, x, y, side in frame]
                  for frame in item["frames"]]
        for frame in item["frames"]:
            assert all(0 <= x and 0 <= y and x + side <= 32 and y + side <= 32 for _, _, x, y, side in frame)
        if item["category"] == "temporal":
            name = item["basic"]["question"].removeprefix("Does the ").split(" move")[0]
            track = [next((cx, cy) for color, kind, cx, cy in frame if f"{color} {kind}" == name) for frame in frames]
            dx, dy = track[-1][0] - track[0][0], track[-1][1] - track[0][1]
            direction = ("to the right" if dx > 0 else "to the left") if dx else ("down" if dy > 0 else "up")
            assert item["basic"]["question"].endswith(f"move {direction}?")
        if item["category"] == "obj_rel":
            question = item["basic"]["question"].removeprefix("Is the ").removesuffix("?")
            relation = "to the left of" if " to the left of " in question else "above"
            first, second = question.split(f" {relation} the ")
            for frame in frames:
                a = next(f for f in frame if f"{f[0]} {f[1]}" == first)
                b = next(f for f in frame if f"{f[0]} {f[1]}" == second)
                assert (a[2] < b[2]) if relation == "to the left of" else (a[3] < b[3])
        if item["category"] == "semantic":
            absent = item["hallucination"]["question"].removeprefix("Is there a ").removeprefix("n ").split(" in ")[0]
            assert absent not in {f"{f[0]} {f[1]}" for f in frames[0]}


def test_training_conversations_come_from_the_train_split():
    conversations = world.training_conversations(60, 20)
    assert conversations == world.training_conversations(60, 20)
    test_scenes = {tuple(map(tuple, world.payload(s.shapes))) for s in world.scenes("test", 200)}
    images = [c for c in conversations if len(c.frames) == 1]
    videos = [c for c in conversations if len(c.frames) == world.FRAMES]
    assert len(images) == 60 and 0 < len(videos) <= 20
    assert not {tuple(map(tuple, c.frames[0])) for c in images} & test_scenes
    replies = Counter(reply for c in conversations for _, reply in c.turns)
    assert replies["Yes"] and replies["No"] and replies["yes"] and replies["no"]
    assert any(reply.startswith("a photo of ") for reply in replies)


@pytest.mark.parametrize("kind, truth", [("number", 3), ("color", "purple"), ("shape", "triangle")])
def test_annotators_mostly_give_the_canonical_answer(kind, truth):
    answers = world.annotator_answers(kind, truth, random.Random(1), annotators=400)
    canonical = vqa.normalize_answer(str(truth))
    assert 0.6 < sum(vqa.normalize_answer(a) == canonical for a in answers) / 400 < 0.99
