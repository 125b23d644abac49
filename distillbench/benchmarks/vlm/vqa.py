r"""VQAv2 accuracy as the official evaluation code computes it.

Source: GT-Vision-Lab/VQA, ``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` (``VQAEval``), at the
repository's last commit a013f00 (2021-03-11, "Fixed processing answers bug"); the tables below are that
file's ``contractions``, ``manualMap``, ``articles`` and ``punct``.

Per question, with the 10 human answers ``a_1..a_10`` and the prediction ``p``:

* both are whitespace-cleaned (``\n`` and ``\t`` to spaces, then stripped);
* only when the humans disagree (more than one distinct answer) are the answers *and* the prediction
  normalised: `process_punctuation`, then `process_digit_article`. When all ten agree, the raw cleaned
  strings are compared, so "two" does not match ten humans' "2" (``rules="2021"``, the default).
  Before that commit the prediction was always normalised and the human answers only
  punctuation-processed on disagreement; ``rules="2017"`` reproduces that version (commit a4f1afd,
  the repository's code from 2017 to 2021);
* accuracy = mean over i of min(1, #{j != i : a_j == p} / 3) (leave one human out, ten times);
  two agreeing humans give 0.6, three give 0.9, four or more 1.0.

Overall, per answer type and per question type: round(100 * mean, 2) as the script (Python 2.7) computes
it: the sum left to right (Python 3.12+ compensates float sums), and Python 2.7's ``round``, which
rounds the exact binary value half away from zero (Python 3's rounds halves to even: 3.125 gives 3.12
there, 3.13 in the official figures).

Quirks kept on purpose, since they change numbers: punctuation is deleted (not spaced) everywhere in
an answer as soon as it has a digit-comma-digit run anywhere; the period pattern's ``(?!<=\d)`` is a
look-ahead, not a look-behind, so only "a period not followed by a digit" counts; the official call
passes ``re.UNICODE`` (= 32) as the *count* of ``sub``, so at most 32 such periods are removed; and
Python 2's ``\d`` without that flag matched ASCII digits only (``re.ASCII`` here). Contraction keys
with capitals ("Im", "Ive", "Id've") never match, since words are lower-cased first.
"""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

from distillbench.core.errors import UserInputError

from distillbench.benchmarks.vlm import read_json

RULES = ("2021", "2017")

# Keys without apostrophes map to the written form; some official entries map the other way.
CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've",
    "she'dve": "she'd've", "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's",
    "somethingd": "something'd", "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd", "thered've": "there'd've",
    "there'dve": "there'd've", "therere": "there're", "theres": "there's", "theyd": "they'd",
    "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's", "whereve": "where've",
    "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've",
    "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've",
    "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}

MANUAL_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
              "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = ("a", "an", "the")
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
               "?", "!")
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)", re.ASCII)
COMMA_STRIP = re.compile(r"(\d)(,)(\d)", re.ASCII)
PERIOD_STRIP_COUNT = re.UNICODE.value  # 32: the official call passes the flag where `count` goes


def clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    """Each punctuation mark deleted where it touches a space (or anywhere, once the text has a
    digit,digit run), else replaced by a space; then periods not followed by a digit deleted.

    The conditions look at the original text, not at what earlier marks' replacements left.
    """
    has_digit_comma_digit = COMMA_STRIP.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        if mark + " " in text or " " + mark in text or has_digit_comma_digit:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return PERIOD_STRIP.sub("", out, count=PERIOD_STRIP_COUNT)


def process_digit_article(text: str) -> str:
    """Lower case; number words zero..ten and "none" to digits; articles dropped; contractions restored."""
    words = []
    for word in text.lower().split():
        word = MANUAL_MAP.get(word, word)
        if word not in ARTICLES:
            words.append(word)
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def normalize_answer(text: str) -> str:
    """The official normalisation of one answer: punctuation, then digits, articles and contractions."""
    return process_digit_article(process_punctuation(text))


def _check_rules(rules: str) -> None:
    if rules not in RULES:
        raise ValueError(f"rules must be one of {RULES}, not {rules!r}")


def comparable_answers(prediction: str, human_answers: Iterable[str], *, rules: str = "2021") -> tuple[str, list[str]]:
    """The prediction and the human answers as the official code compares them."""
    _check_rules(rules)
    prediction = clean_whitespace(prediction)
    if rules == "2017":
        answers = list(human_answers)
        if len(set(answers)) > 1:
            answers = [process_punctuation(answer) for answer in answers]
        return normalize_answer(prediction), answers
    answers = [clean_whitespace(answer) for answer in human_answers]
    if len(set(answers)) > 1:
        return normalize_answer(prediction), [normalize_answer(answer) for answer in answers]
    return prediction, answers


def python2_sum(values: Iterable[float]) -> float:
    """``sum`` as Python 2 (and Python 3 before 3.12) adds floats: left to right, uncompensated.

    Python 3.12's ``sum`` compensates rounding errors, which can move a mean by an ulp and so the
    last printed digit; the official script is Python 2.
    """
    total = 0
    for value in values:
        total = total + value
    return total


def python2_round(value: float, digits: int) -> float:
    """Python 2.7's ``round(value, digits)``: the float's exact binary value rounded half away from
    zero (CPython 2.7 ``Objects/floatobject.c``, ``_Py_double_round``), not Python 3's half to even.

    ``Decimal(value)`` is that exact value, so 2.675 (really 2.67499...) still gives 2.67, as in 2.7.
    """
    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP))


def percent(accuracies: Iterable[float], digits: int = 2) -> float:
    """``VQAEval.setAccuracy``'s ``round(100*float(sum(acc))/len(acc), n)`` (vqaEval.py lines 158-160 at
    a013f00), with Python 2.7's sum and round."""
    accuracies = list(accuracies)
    return python2_round(100 * python2_sum(accuracies) / len(accuracies), digits)


def question_accuracy(prediction: str, human_answers: Iterable[str], *, rules: str = "2021") -> float:
    """Leave-one-out VQA accuracy of one prediction (0..1): the mean over each human answer left out
    of min(1, matches among the others / 3).

    The official code leaves out the answer *records* equal to the current one; VQA annotations give
    each record a distinct ``answer_id``, so that is exactly one record, as here.
    """
    prediction, answers = comparable_answers(prediction, human_answers, rules=rules)
    if not answers:
        raise ValueError("a VQA question needs human answers")
    matches = sum(answer == prediction for answer in answers)
    per_left_out = [min(1.0, (matches - (answer == prediction)) / 3) for answer in answers]
    return python2_sum(per_left_out) / len(per_left_out)  # vqaEval.py line 112: float(sum(gtAcc))/len(gtAcc)


def evaluate(items: Iterable[Mapping[str, Any]], predictions: Mapping[Any, str], *, rules: str = "2021",
             digits: int = 2) -> dict[str, Any]:
    """VQAEval.evaluate over `items` (as `load_vqa` returns them) and predictions keyed by question id.

    Like the official ``loadRes``, predictions must cover exactly the items' questions. Returns
    ``overall``, ``per_answer_type``, ``per_question_type`` (percentages rounded to `digits`) and
    ``per_question`` (the unrounded 0..1 accuracy by question id, for paired comparisons).
    """
    items = list(items)
    predicted = {str(question_id): answer for question_id, answer in predictions.items()}
    ids = [item["id"] for item in items]
    missing = [i for i in ids if i not in predicted]
    extra = sorted(set(predicted) - set(ids))
    if missing or extra:
        raise UserInputError(f"VQA predictions must cover exactly the annotated questions: {len(missing)} missing "
                             f"(e.g. {missing[:3]}), {len(extra)} not in the annotations (e.g. {extra[:3]})")
    per_question = {}
    by_answer_type: dict[str, list[float]] = defaultdict(list)
    by_question_type: dict[str, list[float]] = defaultdict(list)
    for item in items:
        accuracy = question_accuracy(predicted[item["id"]], item["answers"], rules=rules)
        per_question[item["id"]] = accuracy
        by_answer_type[item["answer_type"]].append(accuracy)
        by_question_type[item["question_type"]].append(accuracy)

    return {"overall": percent(per_question.values(), digits),
            "per_answer_type": {name: percent(values, digits) for name, values in by_answer_type.items()},
            "per_question_type": {name: percent(values, digits) for name, values in by_question_type.items()},
            "per_question": per_question, "rules": rules}


def find_vqa_files(folder: str | Path, subtype: str = "val2014") -> tuple[Path, Path]:
    """The official file pair in `folder`: ``v2_OpenEnded_mscoco_<subtype>_questions.json`` and
    ``v2_mscoco_<subtype>_annotations.json``."""
    folder = Path(folder)
    questions = folder / f"v2_OpenEnded_mscoco_{subtype}_questions.json"
    annotations = folder / f"v2_mscoco_{subtype}_annotations.json"
    for path in (questions, annotations):
        if not path.is_file():
            raise UserInputError(f"{path}: file not found (the official VQAv2 file names are expected)")
    return questions, annotations


def load_vqa(questions_path: str | Path, annotations_path: str | Path) -> list[dict[str, Any]]:
    """Items from the official question and annotation JSON files, in annotation order.

    Each item: ``id`` (the question id as a string), ``question_id``, ``image_id``, ``question``,
    ``question_type``, ``answer_type``, ``answers`` (the human answer strings, in ``answer_id`` order
    as the file lists them) and ``multiple_choice_answer``.
    """
    questions = read_json(questions_path)
    annotations = read_json(annotations_path)
    for path, data, key in ((questions_path, questions, "questions"), (annotations_path, annotations, "annotations")):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise UserInputError(f"{path}: expected an object with a {key!r} list (the official VQA format)")
    text_by_id = {question["question_id"]: question["question"] for question in questions["questions"]}
    items = []
    for number, annotation in enumerate(annotations["annotations"]):
        missing = [key for key in ("question_id", "image_id", "question_type", "answer_type", "answers")
                   if key not in annotation]
        if missing:
            raise UserInputError(f"{annotations_path}: annotations[{number}]: missing field {missing[0]!r}")
        question_id = annotation["question_id"]
        if question_id not in text_by_id:
            raise UserInputError(f"{annotations_path}: question {question_id} is not in {questions_path}")
        items.append({"id": str(question_id), "question_id": question_id, "image_id": annotation["image_id"],
                      "question": text_by_id[question_id], "question_type": annotation["question_type"],
                      "answer_type": annotation["answer_type"],
                      "answers": [answer["answer"] for answer in annotation["answers"]],
                      "multiple_choice_answer": annotation.get("multiple_choice_answer")})
    return items


def load_results(path: str | Path) -> dict[str, str]:
    """Predictions from the official results file: a JSON list of ``{"question_id", "answer"}``."""
    records = read_json(path)
    if not isinstance(records, list):
        raise UserInputError(f"{path}: results must be a JSON list of {{question_id, answer}} objects")
    predictions = {}
    for number, record in enumerate(records):
        if not isinstance(record, dict) or "question_id" not in record or "answer" not in record:
            raise UserInputError(f"{path}: record {number}: needs 'question_id' and 'answer'")
        predictions[str(record["question_id"])] = record["answer"]
    return predictions
