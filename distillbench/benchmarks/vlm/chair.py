"""CHAIR (Rohrbach et al., EMNLP 2018, arXiv:1809.02156): object hallucination in image captions.

Source: LisaAnne/Hallucination, ``utils/chair.py`` (class ``CHAIR``) and ``data/synonyms.txt``.

A caption's COCO objects: lower-case, `chair_words.word_tokenize`, `chair_words.singularize` each
token, merge the two-word names (`DOUBLE_WORDS`: "hot dog", "teddy bear", "baby dog" → dog,
"passenger jet" → jet, "toilet seat" → toilet, "bow tie" → tie, "wine glas" → wine glass...), drop
every "seat" when "toilet" is also there, keep the words that are COCO synonyms and map each to its
category (`INVERSE_SYNONYMS`, the first name on its line of `SYNONYM_LINES`).

An image's ground truth: the categories of its instance annotations plus the objects found the same
way in its reference captions. A mention is hallucinated when its category is not in the ground truth.

* CHAIRs = captions with at least one hallucinated mention / captions;
* CHAIRi = hallucinated mentions / all COCO-object mentions (repeated mentions count each time);
* recall = sum over captions of |ground truth ∩ mentioned categories| / sum of |ground truth|, the
  figure OPERA's fork of ``chair.py`` and lmms-eval's ``coco_cap_chair`` add (not in the original).

The tables are an `ObjectVocabulary`: `COCO` (the official ones) by default; pocket-chair passes the
pocket-shapes one (`distillbench.pocket.shapes_vlm.chair_vocabulary`) through the same code.

All three are fractions (0..1), as the official ``overall_metrics``; papers print them ×100. Two
official quirks are kept because they decide what is seen: the synonyms file is split on ", " so
" motor bike" and " cheesecake" keep a leading space and never match, and the merge produces
"motor bike" and "motor cycle", which are then not synonyms either; "iPhone" never matches a
lower-cased caption. Where the official code divides by zero (no mentions at all), CHAIRi is 0.0.

The number depends on generation settings as much as on the model: record them with `protocol`
(the usual one is 500 random COCO val2014 images, "Please describe this image in detail.", greedy,
max_new_tokens 512; at 64 tokens OPERA drops the unfinished last sentence, `drop_incomplete_sentence`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from distillbench.core.jsonl import read_jsonl
from distillbench.core.errors import UserInputError

from distillbench.benchmarks.vlm import read_json
from distillbench.benchmarks.vlm.chair_words import singularize, word_tokenize

# data/synonyms.txt, line for line (trailing spaces dropped: each line is stripped before use). The
# first name on a line is the COCO category; long lines are split into adjacent string literals.
SYNONYM_LINES = (
    "person, girl, boy, man, woman, kid, child, chef, baker, people, adult, rider, children, baby, worker, "
    "passenger, sister, biker, policeman, cop, officer, lady, cowboy, bride, groom, male, female, guy, "
    "traveler, mother, father, gentleman, pitcher, player, skier, snowboarder, skater, skateboarder, "
    "person, woman, guy, foreigner, child, gentleman, caller, offender, coworker, trespasser, patient, "
    "politician, soldier, grandchild, serviceman, walker, drinker, doctor, bicyclist, thief, buyer, "
    "teenager, student, camper, driver, solider, hunter, shopper, villager",
    "bicycle, bike, bicycle, bike, unicycle, minibike, trike",
    "car, automobile, van, minivan, sedan, suv, hatchback, cab, jeep, coupe, taxicab, limo, taxi",
    "motorcycle, scooter,  motor bike, motor cycle, motorbike, scooter, moped",
    "airplane, jetliner, plane, air plane, monoplane, aircraft, jet, jetliner, airbus, biplane, seaplane",
    "bus, minibus, trolley",
    "train, locomotive, tramway, caboose",
    "truck, pickup, lorry, hauler, firetruck",
    "boat, ship, liner, sailboat, motorboat, dinghy, powerboat, speedboat, canoe, skiff, yacht, kayak, "
    "catamaran, pontoon, houseboat, vessel, rowboat, trawler, ferryboat, watercraft, tugboat, schooner, "
    "barge, ferry, sailboard, paddleboat, lifeboat, freighter, steamboat, riverboat, battleship, "
    "steamship",
    "traffic light, street light, traffic signal, stop light, streetlight, stoplight",
    "fire hydrant, hydrant",
    "stop sign",
    "parking meter",
    "bench, pew",
    "bird, ostrich, owl, seagull, goose, duck, parakeet, falcon, robin, pelican, waterfowl, heron, "
    "hummingbird, mallard, finch, pigeon, sparrow, seabird, osprey, blackbird, fowl, shorebird, "
    "woodpecker, egret, chickadee, quail, bluebird, kingfisher, buzzard, willet, gull, swan, bluejay, "
    "flamingo, cormorant, parrot, loon, gosling, waterbird, pheasant, rooster, sandpiper, crow, raven, "
    "turkey, oriole, cowbird, warbler, magpie, peacock, cockatiel, lorikeet, puffin, vulture, condor, "
    "macaw, peafowl, cockatoo, songbird",
    "cat, kitten, feline, tabby",
    "dog, puppy, beagle, pup, chihuahua, schnauzer, dachshund, rottweiler, canine, pitbull, collie, pug, "
    "terrier, poodle, labrador, doggie, doberman, mutt, doggy, spaniel, bulldog, sheepdog, weimaraner, "
    "corgi, cocker, greyhound, retriever, brindle, hound, whippet, husky",
    "horse, colt, pony, racehorse, stallion, equine, mare, foal, palomino, mustang, clydesdale, bronc, bronco",
    "sheep, lamb, ram, lamb, goat, ewe",
    "cow, cattle, oxen, ox, calf, cattle, holstein, heifer, buffalo, bull, zebu, bison",
    "elephant",
    "bear, panda",
    "zebra",
    "giraffe",
    "backpack, knapsack",
    "umbrella",
    "handbag, wallet, purse, briefcase",
    "tie, bow, bow tie",
    "suitcase, suit case, luggage",
    "frisbee",
    "skis, ski",
    "snowboard",
    "sports ball, ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard, longboard, skimboard, shortboard, wakeboard",
    "tennis racket, racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife, pocketknife, knive",
    "spoon",
    "bowl, container",
    "banana",
    "apple",
    "sandwich, burger, sub, cheeseburger, hamburger",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut, doughnut, bagel",
    "cake,  cheesecake, cupcake, shortcake, coffeecake, pancake",
    "chair, seat, stool",
    "couch, sofa, recliner, futon, loveseat, settee, chesterfield",
    "potted plant, houseplant",
    "bed",
    "dining table, table, desk",
    "toilet, urinal, commode, toilet, lavatory, potty",
    "tv, monitor, televison, television",
    "laptop, computer, notebook, netbook, lenovo, macbook, laptop computer",
    "mouse",
    "remote",
    "keyboard",
    "cell phone, mobile phone, phone, cellphone, telephone, phon, smartphone, iPhone",
    "microwave",
    "oven, stovetop, stove, stove top oven",
    "toaster",
    "sink",
    "refrigerator, fridge, fridge, freezer",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear, teddybear",
    "hair drier, hairdryer",
    "toothbrush",
)


def _parse_synonyms(lines: Iterable[str]) -> tuple[frozenset[str], dict[str, str]]:
    objects, inverse = set(), {}
    for line in lines:
        synonyms = line.strip().split(", ")
        objects.update(synonyms)
        for synonym in synonyms:
            inverse[synonym] = synonyms[0]
    return frozenset(objects), inverse


@dataclass(frozen=True)
class ObjectVocabulary:
    """What counts as an object mention: the tables `caption_objects` applies, in its order.

    ``double_words`` (two tokens read as one word, after singularizing) → the word they become;
    ``drop_when``: (present, dropped) pairs, every `dropped` word removed when `present` is there
    (COCO: "seat" when "toilet"); ``objects``: the synonym words kept; ``inverse_synonyms``: a
    synonym → its category. `COCO` is the official tables; a pocket world builds its own with
    `from_synonym_lines`, parsed the same way.
    """

    name: str
    objects: frozenset[str]
    inverse_synonyms: Mapping[str, str]
    double_words: Mapping[str, str]
    drop_when: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_synonym_lines(cls, name: str, lines: Iterable[str], double_words: Mapping[str, str],
                           drop_when: tuple[tuple[str, str], ...] = ()) -> "ObjectVocabulary":
        """Lines as in ``data/synonyms.txt``: the category first, then its synonyms, split on ", "."""
        objects, inverse = _parse_synonyms(lines)
        return cls(name, objects, inverse, dict(double_words), tuple(drop_when))


MSCOCO_OBJECTS, INVERSE_SYNONYMS = _parse_synonyms(SYNONYM_LINES)
COCO_CATEGORIES = tuple(line.split(", ")[0] for line in SYNONYM_LINES)

# Two-word names read as one word; "hot dog" and "teddy bear" are listed twice in the original.
COCO_DOUBLE_WORDS = (
    "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal", "stop light",
    "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball", "baseball bat", "baseball glove",
    "tennis racket", "wine glass", "hot dog", "cell phone", "mobile phone", "teddy bear", "hair drier",
    "potted plant", "bow tie", "laptop computer", "stove top oven", "hot dog", "teddy bear", "home plate",
    "train track",
)
# "baby"/"adult" and "passenger" are person synonyms: "baby bird" must read as a bird, not a person.
ANIMAL_WORDS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub")
VEHICLE_WORDS = ("jet", "train")
DOUBLE_WORDS = {
    **{words: words for words in COCO_DOUBLE_WORDS},
    **{f"{age} {animal}": animal for animal in ANIMAL_WORDS for age in ("baby", "adult")},
    **{f"passenger {vehicle}": vehicle for vehicle in VEHICLE_WORDS},
    "bow tie": "tie", "toilet seat": "toilet", "wine glas": "wine glass",
}
COCO = ObjectVocabulary("coco", MSCOCO_OBJECTS, INVERSE_SYNONYMS, DOUBLE_WORDS, (("toilet", "seat"),))


@dataclass(frozen=True)
class CaptionObjects:
    """What `caption_objects` finds: the synonym words as written (singular) and their categories."""

    words: tuple[str, ...]
    categories: tuple[str, ...]
    tokens: tuple[str, ...]  # every token after singularizing and merging, for auditing


def caption_objects(caption: str, vocabulary: ObjectVocabulary = COCO) -> CaptionObjects:
    """The objects one caption mentions, in order, repeats kept (``CHAIR.caption_to_words``)."""
    tokens = [singularize(token) for token in word_tokenize(caption.lower())]
    merged, index = [], 0
    while index < len(tokens):
        pair = " ".join(tokens[index:index + 2])
        if pair in vocabulary.double_words:
            merged.append(vocabulary.double_words[pair])
            index += 2
        else:
            merged.append(tokens[index])
            index += 1
    words = merged
    for present, dropped in vocabulary.drop_when:  # COCO: "the seat of the toilet" is no chair
        if present in words and dropped in words:
            words = [word for word in words if word != dropped]
    words = [word for word in words if word in vocabulary.objects]
    return CaptionObjects(tuple(words), tuple(vocabulary.inverse_synonyms[word] for word in words), tuple(merged))


def score_caption(caption: str, ground_truth: Iterable[str], vocabulary: ObjectVocabulary = COCO) -> dict[str, Any]:
    """One caption against its image's ground-truth categories: per-caption CHAIRs (0/1), CHAIRi and
    recall, with the counts the corpus figures add up and the hallucinated (word, category) pairs."""
    truth = set(ground_truth)
    found = caption_objects(caption, vocabulary)
    hallucinated = [(word, category) for word, category in zip(found.words, found.categories) if category not in truth]
    recalled = truth & set(found.categories)
    return {"chair_s": int(bool(hallucinated)),
            "chair_i": len(hallucinated) / len(found.words) if found.words else 0.0,
            "recall": len(recalled) / len(truth) if truth else 0.0,
            "mentions": len(found.words), "hallucinated_mentions": len(hallucinated),
            "ground_truth_size": len(truth), "recalled": len(recalled),
            "hallucinated": hallucinated, "mentioned": list(found.categories)}


def evaluate(captions: Iterable[tuple[Any, str]], ground_truth: Mapping[Any, Iterable[str]],
             vocabulary: ObjectVocabulary = COCO) -> dict[str, Any]:
    """CHAIRs, CHAIRi and recall over (image id, caption) pairs, plus each caption's record."""
    per_caption = []
    for image_id, caption in captions:
        if image_id not in ground_truth:
            raise UserInputError(f"CHAIR: image {image_id!r} has no ground truth objects loaded")
        per_caption.append({"image_id": image_id, "caption": caption,
                            **score_caption(caption, ground_truth[image_id], vocabulary)})
    if not per_caption:
        raise ValueError("no captions to score")
    mentions = sum(record["mentions"] for record in per_caption)
    truth = sum(record["ground_truth_size"] for record in per_caption)
    return {"CHAIRs": sum(record["chair_s"] for record in per_caption) / len(per_caption),
            "CHAIRi": sum(record["hallucinated_mentions"] for record in per_caption) / mentions if mentions else 0.0,
            "recall": sum(record["recalled"] for record in per_caption) / truth if truth else 0.0,
            "captions": len(per_caption), "mentions": mentions, "per_caption": per_caption}


def ground_truth_objects(instances: Mapping[str, Any], captions: Mapping[str, Any],
                         image_ids: Iterable[Any]) -> dict[Any, set[str]]:
    """Each image's ground-truth categories from COCO instance and caption annotations
    (``get_annotations_from_segments`` then ``get_annotations_from_captions``)."""
    objects: dict[Any, set[str]] = {image_id: set() for image_id in image_ids}
    names = {category["id"]: category["name"] for category in instances["categories"]}
    for annotation in instances["annotations"]:
        if annotation["image_id"] in objects:
            objects[annotation["image_id"]].add(INVERSE_SYNONYMS[names[annotation["category_id"]]])
    for annotation in captions["annotations"]:
        if annotation["image_id"] in objects:
            objects[annotation["image_id"]].update(caption_objects(annotation["caption"]).categories)
    return objects


def _merge(parts: list[Mapping[str, Any]], images: bool = False) -> dict[str, Any]:
    merged = {"annotations": [annotation for part in parts for annotation in part["annotations"]]}
    if images:
        merged["images"] = [image for part in parts for image in part.get("images", [])]
    if all("categories" in part for part in parts):
        merged["categories"] = [category for part in parts for category in part["categories"]]
    return merged


def coco_annotation_files(folder: str | Path) -> dict[str, list[Path]]:
    """``instances`` and ``captions`` → the COCO 2014 files of that kind in `folder` (val, then train).

    The official code reads ``instances_{train,val}2014.json`` and ``captions_{train,val}2014.json``
    and joins them; here whichever of the two splits are present are read (val2014 alone serves the
    usual val2014 protocol), and at least one file of each kind is required.
    """
    folder = Path(folder)
    found = {kind: [folder / f"{kind}_{split}2014.json" for split in ("val", "train")
                    if (folder / f"{kind}_{split}2014.json").is_file()] for kind in ("instances", "captions")}
    for kind, paths in found.items():
        if not paths:
            raise UserInputError(f"{folder}: no {kind}_val2014.json or {kind}_train2014.json")
    return found


def load_coco_annotations(folder: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(instances, captions): the COCO 2014 annotation files in `folder`, each kind's splits joined."""
    found = coco_annotation_files(folder)
    instances = _merge([read_json(path) for path in found["instances"]], images=True)
    captions = _merge([read_json(path) for path in found["captions"]])
    if "categories" not in instances:
        raise UserInputError(f"{folder}: the instances files lack 'categories'")
    return instances, captions


def load_coco_ground_truth(folder: str | Path, image_ids: Iterable[Any]) -> tuple[dict[Any, set[str]], list[str]]:
    """Ground truth for `image_ids` from the COCO 2014 annotation files in `folder`, and the files read."""
    instances, captions = load_coco_annotations(folder)
    files = [path.name for paths in coco_annotation_files(folder).values() for path in paths]
    return ground_truth_objects(instances, captions, image_ids), files


def load_generated_captions(path: str | Path, *, image_id_key: str = "image_id",
                            caption_key: str = "caption") -> list[tuple[Any, str]]:
    """(image id, caption) pairs from the official input (a coco-caption result with ``imgToEval``),
    a JSON list, or a JSONL file of ``{image_id, caption}`` records (OPERA's and lmms-eval's form)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        records = read_jsonl(path, (image_id_key, caption_key))
    else:
        data = read_json(path)
        records = list(data["imgToEval"].values()) if isinstance(data, dict) and "imgToEval" in data else data
        if not isinstance(records, list) or not all(isinstance(r, dict) and image_id_key in r and caption_key in r
                                                    for r in records):
            raise UserInputError(f"{path}: expected {{'imgToEval': ...}} or a list of "
                                 f"{{{image_id_key!r}, {caption_key!r}}} objects")
    return [(record[image_id_key], record[caption_key]) for record in records]


def drop_incomplete_sentence(caption: str) -> str:
    """The caption up to its last period (OPERA's cut for short generations); kept whole without one."""
    end = caption.rfind(".")
    return caption[:end + 1] if end >= 0 else caption


def protocol(*, max_new_tokens: int, prompt: str = "Please describe this image in detail.", decoding: str = "greedy",
             images: str = "", drop_incomplete: bool = False) -> dict[str, Any]:
    """What a CHAIR number depends on besides the model; store it beside the number."""
    return {"scorer": "CHAIR, LisaAnne/Hallucination utils/chair.py rules",
            "synonyms": "data/synonyms.txt (80 COCO categories)",
            "tokenizer": "nltk 3.2.5 word_tokenize (Treebank and Punkt ports, Punkt without its English tables)",
            "singularizer": "pattern 3.6 singularize (port)", "recall": "micro, as OPERA and lmms-eval",
            "max_new_tokens": max_new_tokens, "prompt": prompt, "decoding": decoding, "images": images,
            "drop_incomplete_sentence": drop_incomplete}
