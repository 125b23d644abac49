"""pocket-mtbench: two-turn questions of the pocket-math world in MT-Bench's format.

MT-Bench (Zheng et al., 2023, arXiv:2306.05685; lm-sys/FastChat ``llm_judge``)
has 80 two-turn questions, 10 in each of 8 categories, stored one JSON object a
line as ``{"question_id", "category", "turns": [turn_1, turn_2]}``. This world
has the same shape: 8 pocket-math categories × 10 questions, deterministic from
a seed, every turn under 90 characters (the pocket models are tiny character
level models), and a second turn that builds on the first answer ("Now double
your answer.", "Now convert that to mm."). By construction the second answer
always differs from the first, so repeating the first answer never passes turn 2.

The ground truth is computed by `solve`, which parses the question texts (the
templates are ours, so they are regular); the generator itself keeps no answers,
so there is one source of truth. Answers are expected in the pocket-math style:
short steps ending in ``\\boxed{answer}``; `reference_turns` writes them, and
`reference_answers` wraps them in FastChat's reference-answer records.

Rounding is half up (145 to the nearest ten is 150), as taught in school.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Callable

from distillbench.pocket.math_world import NOISE_KINDS, _corrupt

CATEGORIES = ("arithmetic", "word", "units", "compare", "algebra", "sequence", "rounding", "extraction")

# MT-Bench gives reference answers to the categories where a judge must compute
# (math, reasoning, coding). Here the multi-step computations get them; the
# look-up-like categories are judged with the general prompts, so a pocket run
# exercises all eight official judge prompt variants.
NEED_REF_CATEGORIES = ("arithmetic", "word", "algebra", "sequence")

# MT-Bench answers its computation categories (math, reasoning, extraction) greedily.
ANSWER_TEMPERATURES = {category: 0.0 for category in CATEGORIES}

ORACLE_MODEL_ID = "pocket-oracle"
MAX_TURN_CHARS = 90

_NAMES = ("Ann", "Bob", "Cy", "Dee", "Eve", "Fay")
_THINGS = ("apples", "pens", "cards", "coins", "eggs")


# --- generators: one per category, rng -> (turn 1, turn 2) -------------------------------

def _arithmetic(rng: random.Random) -> tuple[str, str]:
    op = rng.choice("+-*")
    a, b = rng.randint(2, 60), (rng.randint(2, 9) if op == "*" else rng.randint(2, 60))
    if op == "-" and b > a:
        a, b = b, a
    return f"Compute {a}{op}{b}.", _follow_up(rng)


def _follow_up(rng: random.Random) -> str:
    """An operation on the previous answer, shared by the categories whose turn 2 is arithmetic."""
    kind = rng.choice(("double", "add", "subtract", "multiply"))
    if kind == "double":
        return "Now double your answer."
    if kind == "multiply":
        return f"Now multiply your answer by {rng.randint(2, 5)}."
    if kind == "add":
        return f"Now add {rng.randint(2, 30)} to your answer."
    return f"Now subtract {rng.randint(1, 9)} from your answer."


def _word(rng: random.Random) -> tuple[str, str]:
    name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
    start = rng.randint(5, 40)
    first = f"{name} has {start} {thing}, {rng.choice(('gets', 'loses'))} {rng.randint(1, 9)}. How many {thing} now?"
    return first, f"Then {name} {rng.choice(('gets', 'loses'))} {rng.randint(1, 9)}. How many now?"


# (bigger unit, smaller unit, factor) and the next smaller unit for turn 2.
_UNIT_FACTORS = {("km", "m"): 1000, ("m", "cm"): 100, ("cm", "mm"): 10,
                 ("d", "h"): 24, ("h", "min"): 60, ("min", "s"): 60}
_UNIT_CHAINS = (("km", "m", "cm"), ("m", "cm", "mm"), ("d", "h", "min"), ("h", "min", "s"))


def _units(rng: random.Random) -> tuple[str, str]:
    big, small, smaller = rng.choice(_UNIT_CHAINS)
    return f"How many {small} are in {rng.randint(1, 9)} {big}?", f"Now convert that to {smaller}."


def _compare(rng: random.Random) -> tuple[str, str]:
    a, b = rng.sample(range(2, 91), 2)  # distinct, so "which is larger" has an answer
    if rng.random() < 0.5:
        return f"Which is larger, {a} or {b}?", "Now double the smaller one. Which is larger now?"
    return f"Which is larger, {a} or {b}?", f"Now add {rng.randint(2, 40)} to the smaller one. Which is larger now?"


def _algebra(rng: random.Random) -> tuple[str, str]:
    x, b = rng.randint(1, 30), rng.randint(1, 30)
    k = rng.choice((1, 2, 3, 4, 5))
    left = "x" if k == 1 else f"{k}x"
    return f"Solve {left}+{b}={k * x + b}.", f"Now compute {rng.randint(2, 5)}x+{rng.randint(1, 9)}."


def _sequence(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.6:
        start, step = rng.randint(1, 30), rng.randint(2, 9)
        terms = [start + i * step for i in range(4)]
    else:
        start, ratio = rng.randint(1, 5), rng.choice((2, 3))
        terms = [start * ratio**i for i in range(4)]
    return f"What comes next: {', '.join(map(str, terms))}?", "And the term after that?"


def _rounding(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:
        return f"Round {rng.randint(101, 999)} to the nearest ten.", "Now round your answer to the nearest hundred."
    return (f"Round {rng.randint(1001, 9999)} to the nearest hundred.",
            "Now round your answer to the nearest thousand.")


def _extraction(rng: random.Random) -> tuple[str, str]:
    name = rng.choice(_NAMES)
    asked, other = rng.sample(_THINGS, 2)
    first_thing, second_thing = (asked, other) if rng.random() < 0.5 else (other, asked)
    text = f"Text: {name} has {rng.randint(2, 40)} {first_thing} and {rng.randint(2, 40)} {second_thing}."
    verb = rng.choice((f"Now add the {other} to that.", f"Now take away the {other} from that."))
    return f"{text} How many {asked}?", verb


GENERATORS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "arithmetic": _arithmetic, "word": _word, "units": _units, "compare": _compare,
    "algebra": _algebra, "sequence": _sequence, "rounding": _rounding, "extraction": _extraction,
}


def generate_questions(seed: int = 0, per_category: int = 10) -> list[dict]:
    """MT-Bench-format question records: `per_category` per category, ids 1.. grouped by category."""
    rng = random.Random(f"pocket-mtbench/{seed}")
    records, seen = [], set()
    for category in CATEGORIES:
        for turns in _distinct_valid(rng, category, per_category, seen):
            records.append({"question_id": len(records) + 1, "category": category, "turns": list(turns)})
    return records


def _distinct_valid(rng: random.Random, category: str, count: int, seen: set[str]):
    made, attempts = 0, 0
    while made < count:
        attempts += 1
        if attempts > 1000 * count:
            raise ValueError(f"pocket-mtbench cannot produce {count} distinct {category} questions")
        turns = GENERATORS[category](rng)
        if turns[0] in seen or not _is_valid(turns):
            continue
        seen.add(turns[0])
        made += 1
        yield turns


def _is_valid(turns: tuple[str, str]) -> bool:
    """Short turns, non-negative answers, and a turn-2 answer that differs from turn 1's."""
    if any(len(turn) >= MAX_TURN_CHARS for turn in turns):
        return False
    first, second = (int(answer) for answer in solve(list(turns)))
    return first >= 0 and second >= 0 and first != second


# --- the solver: question texts -> worked steps and answers ----------------------------

_Worked = tuple[str, int]  # (steps, answer)


def solve(question_text_turns: list[str]) -> list[str]:
    """The expected final answer of each turn given (one or both turns of a pocket-mtbench question)."""
    return [str(answer) for _, answer in _work(question_text_turns)]


def reference_turns(question_text_turns: list[str]) -> list[str]:
    """Pocket-math style answers, one per turn: short steps then ``\\boxed{answer}``."""
    return [f"{steps} \\boxed{{{answer}}}" for steps, answer in _work(question_text_turns)]


def reference_answers(questions: list[dict], categories: tuple[str, ...] = NEED_REF_CATEGORIES) -> list[dict]:
    """FastChat reference-answer records (``reference_answer/<judge>.jsonl``) for `categories`."""
    return [_reference_record(q) for q in questions if q["category"] in categories]


def _reference_record(question: dict) -> dict:
    turns = reference_turns(question["turns"])
    answer_id = hashlib.sha256(("\n".join(question["turns"])).encode()).hexdigest()[:22]
    return {"question_id": question["question_id"], "answer_id": answer_id, "model_id": ORACLE_MODEL_ID,
            "choices": [{"index": 0, "turns": turns}]}


def _work(turns: list[str]) -> list[_Worked]:
    if not 1 <= len(turns) <= 2:
        raise ValueError(f"a pocket-mtbench question has 1 or 2 turns, got {len(turns)}")
    for pattern, first_turn, second_turn in _SOLVERS:
        match = pattern.fullmatch(turns[0].strip())
        if match:
            first = first_turn(match)
            if len(turns) == 1:
                return [first]
            return [first, second_turn(match, first[1], turns[1].strip())]
    raise ValueError(f"not a pocket-mtbench question: {turns[0]!r}")


def _no_match(turn: str) -> ValueError:
    return ValueError(f"not a pocket-mtbench follow-up: {turn!r}")


def _apply_follow_up(previous: int, turn: str) -> _Worked:
    if turn == "Now double your answer.":
        return f"{previous}*2={previous * 2}.", previous * 2
    for pattern, symbol, operate in _FOLLOW_UPS:
        match = pattern.fullmatch(turn)
        if match:
            number = int(match.group(1))
            result = operate(previous, number)
            return f"{previous}{symbol}{number}={result}.", result
    raise _no_match(turn)


_FOLLOW_UPS = (
    (re.compile(r"Now add (\d+) to your answer\."), "+", lambda x, n: x + n),
    (re.compile(r"Now subtract (\d+) from your answer\."), "-", lambda x, n: x - n),
    (re.compile(r"Now multiply your answer by (\d+)\."), "*", lambda x, n: x * n),
)


def _arithmetic_first(match: re.Match) -> _Worked:
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    result = {"+": a + b, "-": a - b, "*": a * b}[op]
    return f"{a}{op}{b}={result}.", result


def _arithmetic_second(match: re.Match, previous: int, turn: str) -> _Worked:
    return _apply_follow_up(previous, turn)


def _change(total: int, verb: str, amount: int) -> _Worked:
    result = total + amount if verb == "gets" else total - amount
    return f"{total}{'+' if verb == 'gets' else '-'}{amount}={result}.", result


def _word_first(match: re.Match) -> _Worked:
    return _change(int(match.group(2)), match.group(4), int(match.group(5)))


_WORD_SECOND = re.compile(r"Then (\w+) (gets|loses) (\d+)\. How many now\?")


def _word_second(match: re.Match, previous: int, turn: str) -> _Worked:
    second = _WORD_SECOND.fullmatch(turn)
    if not second or second.group(1) != match.group(1):
        raise _no_match(turn)
    return _change(previous, second.group(2), int(second.group(3)))


def _convert(amount: int, big: str, small: str) -> _Worked:
    factor = _UNIT_FACTORS.get((big, small))
    if factor is None:
        raise ValueError(f"pocket-mtbench has no conversion from {big} to {small}")
    return f"{amount}*{factor}={amount * factor}.", amount * factor


def _units_first(match: re.Match) -> _Worked:
    return _convert(int(match.group(2)), match.group(3), match.group(1))


_UNITS_SECOND = re.compile(r"Now convert that to (\w+)\.")


def _units_second(match: re.Match, previous: int, turn: str) -> _Worked:
    second = _UNITS_SECOND.fullmatch(turn)
    if not second:
        raise _no_match(turn)
    return _convert(previous, match.group(1), second.group(1))


def _compare_first(match: re.Match) -> _Worked:
    a, b = int(match.group(1)), int(match.group(2))
    return f"{max(a, b)}>{min(a, b)}.", max(a, b)


_COMPARE_ADD = re.compile(r"Now add (\d+) to the smaller one\. Which is larger now\?")


def _compare_second(match: re.Match, previous: int, turn: str) -> _Worked:
    a, b = int(match.group(1)), int(match.group(2))
    smaller = min(a, b)
    if turn == "Now double the smaller one. Which is larger now?":
        step, changed = f"{smaller}*2={smaller * 2}.", smaller * 2
    elif added := _COMPARE_ADD.fullmatch(turn):
        amount = int(added.group(1))
        step, changed = f"{smaller}+{amount}={smaller + amount}.", smaller + amount
    else:
        raise _no_match(turn)
    larger = max(changed, previous)
    return f"{step} {larger}>{min(changed, previous)}.", larger


def _algebra_first(match: re.Match) -> _Worked:
    k, b, c = int(match.group(1) or 1), int(match.group(2)), int(match.group(3))
    if k == 1:
        return f"x={c}-{b}={c - b}.", c - b
    return f"{k}x={c}-{b}={c - b}. x={c - b}/{k}={(c - b) // k}.", (c - b) // k


_ALGEBRA_SECOND = re.compile(r"Now compute (\d+)x\+(\d+)\.")


def _algebra_second(match: re.Match, previous: int, turn: str) -> _Worked:
    second = _ALGEBRA_SECOND.fullmatch(turn)
    if not second:
        raise _no_match(turn)
    m, d = int(second.group(1)), int(second.group(2))
    return f"{m}*{previous}+{d}={m * previous + d}.", m * previous + d


def _sequence_rule(terms: list[int]) -> tuple[str, Callable[[int], int]]:
    step = terms[1] - terms[0]
    if all(b - a == step for a, b in zip(terms, terms[1:])):
        return f"+{step}", lambda x: x + step
    ratio = terms[1] // terms[0] if terms[0] else 0
    if ratio and all(a * ratio == b for a, b in zip(terms, terms[1:])):
        return f"*{ratio}", lambda x: x * ratio
    raise ValueError(f"pocket-mtbench sequences add or multiply by a constant: {terms}")


def _sequence_first(match: re.Match) -> _Worked:
    terms = [int(t) for t in match.group(1).split(", ")]
    rule, advance = _sequence_rule(terms)
    return f"{terms[-1]}{rule}={advance(terms[-1])}.", advance(terms[-1])


def _sequence_second(match: re.Match, previous: int, turn: str) -> _Worked:
    if turn != "And the term after that?":
        raise _no_match(turn)
    rule, advance = _sequence_rule([int(t) for t in match.group(1).split(", ")])
    return f"{previous}{rule}={advance(previous)}.", advance(previous)


_PLACES = {"ten": 10, "hundred": 100, "thousand": 1000}


def _round_half_up(number: int, place: str) -> _Worked:
    unit = _PLACES[place]
    result = (number + unit // 2) // unit * unit
    return f"{number} rounds to {result}.", result


def _rounding_first(match: re.Match) -> _Worked:
    return _round_half_up(int(match.group(1)), match.group(2))


_ROUNDING_SECOND = re.compile(r"Now round your answer to the nearest (ten|hundred|thousand)\.")


def _rounding_second(match: re.Match, previous: int, turn: str) -> _Worked:
    second = _ROUNDING_SECOND.fullmatch(turn)
    if not second:
        raise _no_match(turn)
    return _round_half_up(previous, second.group(1))


def _extraction_counts(match: re.Match) -> dict[str, int]:
    return {match.group(3): int(match.group(2)), match.group(5): int(match.group(4))}


def _extraction_first(match: re.Match) -> _Worked:
    counts, asked = _extraction_counts(match), match.group(6)
    if asked not in counts:
        raise ValueError(f"the text does not mention {asked}")
    return f"The text says {counts[asked]} {asked}.", counts[asked]


_EXTRACTION_SECOND = re.compile(r"Now (add|take away) the (\w+) (?:to|from) that\.")


def _extraction_second(match: re.Match, previous: int, turn: str) -> _Worked:
    second = _EXTRACTION_SECOND.fullmatch(turn)
    counts = _extraction_counts(match)
    if not second or second.group(2) not in counts:
        raise _no_match(turn)
    amount = counts[second.group(2)]
    if second.group(1) == "add":
        return f"{previous}+{amount}={previous + amount}.", previous + amount
    return f"{previous}-{amount}={previous - amount}.", previous - amount


# Turn-1 pattern of each category, with how to work turn 1 and turn 2. Patterns are
# disjoint, so the question text alone says which category it is.
_SOLVERS = (
    (re.compile(r"Compute (\d+)([+\-*])(\d+)\."), _arithmetic_first, _arithmetic_second),
    (re.compile(r"(\w+) has (\d+) (\w+), (gets|loses) (\d+)\. How many \3 now\?"), _word_first, _word_second),
    (re.compile(r"How many (\w+) are in (\d+) (\w+)\?"), _units_first, _units_second),
    (re.compile(r"Which is larger, (\d+) or (\d+)\?"), _compare_first, _compare_second),
    (re.compile(r"Solve (?:(\d+)x|x)\+(\d+)=(\d+)\."), _algebra_first, _algebra_second),
    (re.compile(r"What comes next: (\d+(?:, \d+)+)\?"), _sequence_first, _sequence_second),
    (re.compile(r"Round (\d+) to the nearest (ten|hundred|thousand)\."), _rounding_first, _rounding_second),
    (re.compile(r"Text: (\w+) has (\d+) (\w+) and (\d+) (\w+)\. How many (\w+)\?"),
     _extraction_first, _extraction_second),
)


# One source of the pocket SFT chats answers follow-up questions chatty: a friendly preamble,
# a verbose sign-off and no box. A habit shared by most follow-ups, always worded the same
# way, is what greedy decoding reproduces (uniform noise at 25% is not, and neither is a
# habit split between several wordings), so it is what preference alignment can fix.
CHATTY_OPENING = "Sure! Building on the previous answer: "


def chatty(answer_text: str, answer: str) -> str:
    """`answer_text` (steps ending in a box) rewritten in the chatty follow-up style."""
    steps = answer_text[: answer_text.rindex("\\boxed{")].rstrip()
    return f"{CHATTY_OPENING}{steps} So the final answer is {answer}."


def training_conversations(size: int, seed: int = 1, noise_fraction: float = 0.0,
                           chatty_fraction: float = 0.0) -> list[dict]:
    """`size` two-turn chat conversations in the pocket-mtbench style, for SFT.

    Disjoint from the evaluation questions (`generate_questions()`): any conversation
    whose first turn is an evaluation question is skipped. Answers are the reference
    turns, with `noise_fraction` of them corrupted the way pocket-math SFT data is, and
    `chatty_fraction` of the second-turn answers written in the `chatty` style.
    """
    for name, value in (("noise_fraction", noise_fraction), ("chatty_fraction", chatty_fraction)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    rng = random.Random(f"pocket-mtbench/train/{seed}")
    conversations = []
    for category, turns in _training_questions(size, rng):
        answers = []
        for turn, (turn_answer, text) in enumerate(zip(solve(list(turns)), reference_turns(list(turns)))):
            if turn == 1 and rng.random() < chatty_fraction:
                text = chatty(text, turn_answer)
            elif rng.random() < noise_fraction:
                text = _corrupt({"solution": text, "answer": turn_answer}, rng.choice(NOISE_KINDS), rng)
            answers.append(text)
        conversations.append({"category": category, "messages": [
            {"role": "user", "content": turns[0]}, {"role": "assistant", "content": answers[0]},
            {"role": "user", "content": turns[1]}, {"role": "assistant", "content": answers[1]}]})
    rng.shuffle(conversations)
    return conversations


def _training_questions(size: int, rng: random.Random):
    """(category, turns) of `size` valid questions, cycling through the categories, none held out."""
    held_out = {q["turns"][0] for q in generate_questions()}
    made = 0
    while made < size:
        category = CATEGORIES[made % len(CATEGORIES)]
        turns = GENERATORS[category](rng)
        # Small categories (units) repeat in training; only the held-out questions are excluded.
        if turns[0] not in held_out and _is_valid(turns):
            made += 1
            yield category, turns
