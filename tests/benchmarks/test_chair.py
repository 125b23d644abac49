"""CHAIR against the rules of the official utils/chair.py (LisaAnne/Hallucination) and the tools it calls."""

from pathlib import Path

import pytest

from distillbench.benchmarks.vlm import chair
from distillbench.benchmarks.vlm import chair_words
from distillbench.benchmarks.vlm.chair_words import sentences, singularize, word_tokenize
from distillbench.core.errors import UserInputError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "vlm" / "chair"


def test_synonym_table():
    assert len(chair.SYNONYM_LINES) == len(chair.COCO_CATEGORIES) == 80
    assert chair.COCO_CATEGORIES[0] == "person" and chair.COCO_CATEGORIES[-1] == "toothbrush"
    assert len(chair.INVERSE_SYNONYMS) == 403
    for synonym, category in [("puppy", "dog"), ("doughnut", "donut"), ("table", "dining table"), ("seat", "chair"),
                              ("monitor", "tv"), ("bow", "tie"), ("passenger", "person"), ("ski", "skis"),
                              ("stove top oven", "oven"), ("teddybear", "teddy bear"), ("solider", "person")]:
        assert chair.INVERSE_SYNONYMS[synonym] == category
    # The official split on ", " keeps these leading spaces, so the words never match.
    assert " motor bike" in chair.MSCOCO_OBJECTS and "motor bike" not in chair.MSCOCO_OBJECTS
    assert " cheesecake" in chair.MSCOCO_OBJECTS and "cheesecake" not in chair.MSCOCO_OBJECTS


@pytest.mark.parametrize("word, singular", [
    ("dogs", "dog"), ("people", "person"), ("women", "woman"), ("children", "child"), ("knives", "knife"),
    ("mice", "mouse"), ("geese", "goose"), ("oxen", "ox"), ("puppies", "puppy"), ("boxes", "box"),
    ("benches", "bench"), ("leaves", "leaf"), ("wolves", "wolf"), ("buses", "bus"), ("glasses", "glass"),
    ("scissors", "scissors"), ("sheep", "sheep"), ("dogs'", "dog's"), ("mothers-in-law", "mother-in-law"),
    # pattern's quirks, which decide what CHAIR sees
    ("bus", "bu"), ("glass", "glas"), ("ties", "ty"), ("doggies", "doggies"), ("cookies", "cookies"), ("ice", "ice"),
    ("shelves", "shelve"),  # the irregular entry "helves" -> "helve" matches the ending
    # a hyphenated word before a preposition singularizes its first part, "by", "but" and "beyond" included
    ("passers-by", "passer-by"), ("lookers-on", "looker-on"), ("boats-beyond", "boat-beyond"),
    ("dogs-but", "dog-but"), ("hot-dogs", "hot-dog"),
])
def test_singularize(word, singular):
    assert singularize(word) == singular


def test_plural_prepositions_are_patterns():
    # pattern/text/en/inflect.py plural_prepositions (pattern 3.6, unchanged since 2.6), transcribed.
    pattern_list = {
        "about", "before", "during", "of", "till", "above", "behind", "except", "off", "to",
        "across", "below", "for", "on", "under", "after", "beneath", "from", "onto", "until",
        "among", "beside", "in", "out", "unto", "around", "besides", "into", "over", "upon",
        "at", "between", "near", "since", "with", "athwart", "betwixt", "beyond", "but", "by",
    }
    assert chair_words._PLURAL_PREPOSITIONS == pattern_list


@pytest.mark.parametrize("text, tokens", [
    ("a dog, a cat.", ["a", "dog", ",", "a", "cat", "."]),
    ("it is a dog. it is a cat.", ["it", "is", "a", "dog", ".", "it", "is", "a", "cat", "."]),
    ("the dog's bowl", ["the", "dog", "'s", "bowl"]),
    ("the dogs' bowls", ["the", "dogs", "'", "bowls"]),
    ("i can't see. cannot", ["i", "ca", "n't", "see", ".", "can", "not"]),
    ("a hot-dog stand", ["a", "hot-dog", "stand"]),
    ('a "red" car (left)', ["a", "``", "red", "''", "car", "(", "left", ")"]),
    ("a dog.the cat", ["a", "dog.the", "cat"]),  # no space after the period: no sentence end
    ("wait... a bird!", ["wait", "...", "a", "bird", "!"]),
    # Punkt keeps a sentence's own whitespace, and the Treebank rules for ' and 's need a literal space
    ("vessels'\nseat) ...", ["vessels'", "seat", ")", "..."]),
    ("a dog's\nbowl.", ["a", "dog's", "bowl", "."]),
    ('he said "a dog." then', ["he", "said", "``", "a", "dog", ".", "''", "then"]),
    ("a dog.\u201d the cat.", ["a", "dog.", "\u201d", "the", "cat", "."]),  # no sentence end before a curly quote
    ("there are 2. dogs.", ["there", "are", "2.", "dogs", "."]),
])
def test_word_tokenize(text, tokens):
    assert word_tokenize(text) == tokens


# Punkt (nltk 3.2.5 nltk/tokenize/punkt.py) as sent_tokenize runs it, with no trained tables.
SENTENCES = [
    ("a dog's\nbowl. the  cat.", ["a dog's\nbowl.", "the  cat."]),  # cut from the text, whitespace kept
    ("  a dog.\n\n the cat.  ", ["  a dog.", "the cat."]),
    ("a dog? a cat! ok", ["a dog?", "a cat!", "ok"]),
    ('he said "a dog." then (a cat.) ok', ['he said "a dog."', "then (a cat.)", "ok"]),  # realigned
    ("there are 2. dogs. plan b. the end.", ["there are 2. dogs.", "plan b. the end."]),  # number, initial
    ("in 1990. The dog. see j. Bach.", ["in 1990.", "The dog.", "see j. Bach."]),
    ("wait... a bird. wait... The bird.", ["wait... a bird.", "wait... The bird."]),  # an ellipsis never ends
    ("a dog.the cat", ["a dog.the cat"]),
    ("", []),
]


@pytest.mark.parametrize("text, expected", SENTENCES + [
    # nltk 3.2.5 does not take a curly quote for punctuation after the period (later nltk does)
    ("a dog.\u201d the cat.", ["a dog.\u201d the cat."]),
])
def test_sentences(text, expected):
    assert sentences(text) == expected


def test_sentences_match_untrained_nltk_punkt():
    punkt = pytest.importorskip("nltk.tokenize.punkt")
    tokenizer = punkt.PunktSentenceTokenizer()  # no trained parameters, as `sentences`
    for text, expected in SENTENCES:
        assert tokenizer.tokenize(text) == expected, text


@pytest.mark.parametrize("caption, words, categories", [
    ("Two dogs and a hot dog on a table.", ("dog", "hot dog", "table"), ("dog", "hot dog", "dining table")),
    ("A baby elephant and a passenger train.", ("elephant", "train"), ("elephant", "train")),  # no person here
    ("An adult giraffe next to adults.", ("giraffe", "adult"), ("giraffe", "person")),
    ("The seat of the toilet is up.", ("toilet",), ("toilet",)),  # "seat" dropped beside "toilet"
    ("A toilet seat.", ("toilet",), ("toilet",)),
    ("A seat by the window.", ("seat",), ("chair",)),
    ("A man wearing a bow tie.", ("man", "tie"), ("person", "tie")),
    ("Two wine glasses and a wine glass.", ("wine glass", "wine glass"), ("wine glass", "wine glass")),
    ("Teddy bears on a bed.", ("teddy bear", "bed"), ("teddy bear", "bed")),
    ("People and children with knives and mice.", ("person", "child", "knife", "mouse"),
     ("person", "person", "knife", "mouse")),
    ("A TV, a laptop computer and two cell phones.", ("tv", "laptop computer", "cell phone"),
     ("tv", "laptop", "cell phone")),
    ("The dog's bowl.", ("dog", "bowl"), ("dog", "bowl")),
    ("Skis and a ski.", ("ski", "ski"), ("skis", "skis")),
    # official quirks
    ("A bus.", (), ()),  # "bus" singularizes to "bu"
    ("Two buses.", ("bus",), ("bus",)),
    ("A motor bike and a motorbike.", ("motorbike",), ("motorcycle",)),
    ("A cheesecake and a cake.", ("cake",), ("cake",)),
    ("A man's ties.", ("man",), ("person",)),  # "ties" singularizes to "ty"
    ("An iPhone.", (), ()),
    ("A dog.The cat.", ("cat",), ("cat",)),
    # across a newline "vessels'" and "dog's" stay whole, so no boat and no dog (issue #23 item 7)
    ("Vessels'\nseat) ...", ("seat",), ("chair",)),
    ("A dog's\nbowl.", ("bowl",), ("bowl",)),
    ("A dog.\u201d The cat.", ("cat",), ("cat",)),  # "dog." stays whole: no sentence ends at the curly quote
])
def test_caption_objects(caption, words, categories):
    found = chair.caption_objects(caption)
    assert (found.words, found.categories) == (words, categories)


def test_score_caption_counts_repeats():
    record = chair.score_caption("A dog, a dog and a cat on a couch.", {"cat", "couch", "person"})
    assert record["mentioned"] == ["dog", "dog", "cat", "couch"]
    assert record["hallucinated"] == [("dog", "dog"), ("dog", "dog")]
    assert record["chair_s"] == 1 and record["chair_i"] == 0.5
    assert record["recall"] == pytest.approx(2 / 3)
    empty = chair.score_caption("A sunny day.", {"person"})
    assert (empty["chair_s"], empty["chair_i"], empty["recall"]) == (0, 0.0, 0.0)


def test_official_files_end_to_end():
    captions = chair.load_generated_captions(FIXTURES / "generated_captions.jsonl")
    assert chair.load_generated_captions(FIXTURES / "generated_captions_cocoeval.json") == captions
    truth, files = chair.load_coco_ground_truth(FIXTURES, [image_id for image_id, _ in captions])
    assert files == ["instances_val2014.json", "captions_val2014.json"]
    # instance labels plus objects from the reference captions ("refrigerator" comes from a caption)
    assert truth == {139: {"person", "dining table", "tv", "refrigerator"}, 285: {"bear"}, 632: {"bed", "book"}}
    result = chair.evaluate(captions, truth)
    assert result["CHAIRs"] == pytest.approx(2 / 3)
    assert result["CHAIRi"] == pytest.approx(3 / 10)
    assert result["recall"] == pytest.approx(6 / 7)
    first, second, third = result["per_caption"]
    assert first["hallucinated"] == [("dog", "dog"), ("couch", "couch")]
    assert second["mentioned"] == ["bear", "bus"]  # "baby bear" is a bear; the singular "bus" is not seen
    assert third["chair_s"] == 0


def test_missing_ground_truth_and_files(tmp_path):
    with pytest.raises(UserInputError, match="no ground truth"):
        chair.evaluate([(1, "A dog.")], {2: set()})
    with pytest.raises(UserInputError, match="no instances_val2014.json"):
        chair.load_coco_ground_truth(tmp_path, [1])
    bad = tmp_path / "captions.json"
    bad.write_text('[{"image_id": 1}]')
    with pytest.raises(UserInputError, match="expected"):
        chair.load_generated_captions(bad)


def test_protocol_and_sentence_cut():
    assert chair.protocol(max_new_tokens=512)["max_new_tokens"] == 512
    assert chair.protocol(max_new_tokens=64, drop_incomplete=True)["drop_incomplete_sentence"] is True
    assert chair.drop_incomplete_sentence("A dog on a bed. A cat sits on the") == "A dog on a bed."
    assert chair.drop_incomplete_sentence("A dog on a bed") == "A dog on a bed"
