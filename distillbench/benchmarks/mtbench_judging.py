"""MT-Bench judging by the official rules of FastChat's ``llm_judge``.

MT-Bench (Zheng et al., 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot
Arena", arXiv:2306.05685; code: lm-sys/FastChat ``fastchat/llm_judge``). The
rules followed here, and where FastChat states them:

- Judge prompts: ``data/judge_prompts.jsonl``, one prompt per line (``name``,
  ``type``, ``system_prompt``, ``prompt_template``, ``description``,
  ``category``, ``output_format``), loaded by name (``common.load_judge_prompts``).
- Which prompt: ``common.resolve_single_judgment_dict`` /
  ``resolve_pairwise_judgment_dict``: the ``-math-`` variants for categories in
  ``NEED_REF_CATS``, the ``-multi-turn`` variants to judge turn 2.
- Rendering: ``common.run_judge_single`` / ``run_judge_pair``: ``str.format`` of
  the template with turn 1 (single-turn judging) or both turns (multi-turn), and
  ``ref_answer_1``/``ref_answer_2`` from the reference answer when there is one.
  The system prompt is sent as the system message (the GPT-4 path).
- Rating: ``\\[\\[(\\d+\\.?\\d*)\\]\\]``, else ``\\[(\\d+\\.?\\d*)\\]``; no match gives
  −1, and ``show_result.display_result_single`` drops −1 scores.
- Verdict: substring checks for ``[[A]]``, ``[[B]]``, ``[[C]]`` in that order,
  else "error".
- Position swap: each pair is judged twice, the second time with the answers
  swapped; ``show_result.display_result_pairwise`` drops games where either run
  is "error", counts a tie when the first run says tie or the runs disagree, and
  ``win_rate_adjusted = (win + 0.5·tie) / (win + loss + tie)``.

Every function here is pure; sending the prompt to a judge is the backend's job.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Literal

from distillbench.core.errors import UserInputError

# fastchat/llm_judge/common.py: categories whose judge prompt carries a reference answer.
NEED_REF_CATS = ("math", "reasoning", "coding", "arena-hard-200")

# fastchat/llm_judge/common.py `temperature_config`: answer sampling temperature per category.
ANSWER_TEMPERATURES = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
    "arena-hard-200": 0.0,
}

JUDGE_PROMPT_FIELDS = ("name", "type", "system_prompt", "prompt_template", "description", "category",
                       "output_format")

Verdict = Literal["A", "B", "tie", "error"]

_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")


# --- judge prompts ---------------------------------------------------------------------

def load_judge_prompts(path: str | Path) -> dict[str, dict]:
    """The official judge prompts by name, from a ``judge_prompts.jsonl`` file."""
    path = Path(path)
    prompts, problems = {}, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            prompt = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{path}:{number}: not JSON ({error.msg})")
            continue
        missing = [field for field in JUDGE_PROMPT_FIELDS if field not in prompt]
        if missing:
            problems.append(f"{path}:{number}: judge prompt lacks {', '.join(missing)}")
            continue
        prompts[prompt["name"]] = prompt
    if problems:
        raise UserInputError(problems)
    return prompts


def default_judge_prompts_path() -> Path | None:
    """``judge_prompts.jsonl`` inside an installed ``fastchat``, or None.

    The PyPI wheel ``fschat`` (checked: 0.2.36) does not ship ``llm_judge/data``,
    so this finds the file only where fastchat is installed from a git checkout
    of lm-sys/FastChat (``pip install -e``). Otherwise pass the file explicitly.
    """
    try:
        import fastchat
    except ImportError:
        return None
    for root in getattr(fastchat, "__path__", []):
        candidate = Path(root) / "llm_judge" / "data" / "judge_prompts.jsonl"
        if candidate.is_file():
            return candidate
    return None


def judge_prompt_name(category: str, *, pairwise: bool, multi_turn: bool,
                      need_ref_categories: Iterable[str] = NEED_REF_CATS) -> str:
    """The official prompt FastChat uses for a question of `category` (``gen_judgment.make_judge_*``)."""
    needs_ref = category in tuple(need_ref_categories)
    if pairwise:
        name = "pair-math-v1" if needs_ref else "pair-v2"
    else:
        name = "single-math-v1" if needs_ref else "single-v1"
    return f"{name}-multi-turn" if multi_turn else name


# --- rendering -------------------------------------------------------------------------

def render_single(prompt: dict, question: dict, answer, ref_answer=None,
                  multi_turn: bool = False) -> tuple[str, str]:
    """(system, user) messages of single-answer grading, as ``run_judge_single`` builds them.

    `answer` and `ref_answer` are lists of turn strings (or FastChat answer records).
    Single-turn judging shows turn 1; multi-turn judging shows both turns.
    """
    _check_prompt(prompt, "single", multi_turn, ref_answer)
    answer_turns = _turns(answer)
    fields = _reference_fields(ref_answer)
    if multi_turn:
        fields.update(question_1=question["turns"][0], question_2=question["turns"][1],
                      answer_1=answer_turns[0], answer_2=answer_turns[1])
    else:
        fields.update(question=question["turns"][0], answer=answer_turns[0])
    return prompt["system_prompt"], prompt["prompt_template"].format(**fields)


def render_pairwise(prompt: dict, question: dict, answer_a, answer_b, ref_answer=None,
                    multi_turn: bool = False) -> tuple[str, str]:
    """(system, user) messages of pairwise grading, as ``run_judge_pair`` builds them.

    Call it twice with the answers swapped to play FastChat's two games (see `combine_swapped`).
    """
    _check_prompt(prompt, "pairwise", multi_turn, ref_answer)
    turns_a, turns_b = _turns(answer_a), _turns(answer_b)
    fields = _reference_fields(ref_answer)
    if multi_turn:
        fields.update(question_1=question["turns"][0], question_2=question["turns"][1],
                      answer_a_1=turns_a[0], answer_b_1=turns_b[0],
                      answer_a_2=turns_a[1], answer_b_2=turns_b[1])
    else:
        fields.update(question=question["turns"][0], answer_a=turns_a[0], answer_b=turns_b[0])
    return prompt["system_prompt"], prompt["prompt_template"].format(**fields)


def _turns(answer) -> list[str]:
    """Turn strings from a list, or from a FastChat answer record (its first choice)."""
    if isinstance(answer, dict):
        return list(answer["choices"][0]["turns"] if "choices" in answer else answer["turns"])
    return list(answer)


def _reference_fields(ref_answer) -> dict[str, str]:
    # FastChat always passes both reference turns; str.format ignores the unused one.
    if ref_answer is None:
        return {}
    return {f"ref_answer_{index}": turn for index, turn in enumerate(_turns(ref_answer), start=1)}


def _check_prompt(prompt: dict, kind: str, multi_turn: bool, ref_answer) -> None:
    """Fail with a clear message where FastChat would fail with a KeyError or judge the wrong turn."""
    name, template = prompt.get("name", "?"), prompt["prompt_template"]
    if prompt["type"] != kind:
        raise ValueError(f"judge prompt {name!r} is of type {prompt['type']!r}, not {kind!r}")
    if ("{question_1}" in template) != multi_turn:
        raise ValueError(f"judge prompt {name!r} does not fit multi_turn={multi_turn}")
    if "{ref_answer_1}" in template and ref_answer is None:
        raise ValueError(f"judge prompt {name!r} needs a reference answer")


# --- parsing the judge's output ----------------------------------------------------------

def parse_rating(text: str) -> float | None:
    """The ``[[rating]]`` in a judgment, else a ``[rating]``; None where FastChat records −1."""
    match = _RATING.search(text) or _RATING_BACKUP.search(text)
    return float(match.group(1)) if match else None


def parse_verdict(text: str) -> Verdict:
    """"A", "B" or "tie" from ``[[A]]``, ``[[B]]``, ``[[C]]`` (checked in that order), else "error"."""
    if "[[A]]" in text:
        return "A"
    if "[[B]]" in text:
        return "B"
    if "[[C]]" in text:
        return "tie"
    return "error"


# --- combining games ---------------------------------------------------------------------

def combine_swapped(g1: Verdict, g2: Verdict) -> Verdict:
    """One pair's result, seen from the answer that sat in position A in game 1.

    `g1` is the verdict of game 1; `g2` the verdict of game 2, where the answers
    were swapped (so g2 "B" means game 1's A won). Agreement gives that winner;
    a tie in game 1 or a disagreement gives "tie". A game that errored makes the
    pair "error", which FastChat drops rather than counting (`win_rate` does too).
    """
    if g1 == "error" or g2 == "error":
        return "error"
    g2_seen_from_game_1 = {"A": "B", "B": "A"}.get(g2, g2)
    if g1 == "tie" or g1 != g2_seen_from_game_1:
        return "tie"
    return g1


def win_rate(results: Iterable[Verdict]) -> float:
    """FastChat's ``win_rate_adjusted`` of the A side: (wins + 0.5·ties) / games, errors dropped."""
    counted = [result for result in results if result != "error"]
    if not counted:
        raise ValueError("no decided games to compute a win rate from")
    wins, ties = counted.count("A"), counted.count("tie")
    return (wins + 0.5 * ties) / len(counted)


def mean_rating(ratings: Iterable[float | None]) -> float | None:
    """Mean of the ratings that parsed; unparsed ones (FastChat's −1) are dropped."""
    parsed = [rating for rating in ratings if rating is not None]
    return sum(parsed) / len(parsed) if parsed else None
