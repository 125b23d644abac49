"""MT-Bench-style judging (Zheng et al., 2023, arXiv:2306.05685; FastChat llm_judge).

Answers are generated turn by turn (turn 2 sees the model's own turn-1 answer) at
the per-category temperature. Each turn is then graded by a judge backend with
the official prompts (the reference-guided variants for the categories that need
a reference, the multi-turn variants for turn 2), in one of two modes:

* ``single``: a 1-10 rating per turn, parsed with FastChat's rules (``[[rating]]``,
  then ``[rating]``; an unparsable rating is dropped). Metrics ``turn1``, ``turn2``
  and ``score`` (the item's mean over its parsed turns; the mean over items is FastChat's
  ``show_result`` mean over all parsed judgments whenever every verdict parses, as the pocket
  oracle's always do; with a real judge, a question with one unparsable turn weighs its other
  turn double here, where FastChat pools the judgments).
* ``pairwise``: each turn against a baseline's answer (FastChat's
  ``model_answer`` format), judged twice with the positions swapped; a
  disagreement counts as a tie and an error in either game drops that turn.
  Metrics ``turn1_win``, ``turn2_win`` (1 win, 0.5 tie, 0 loss) and ``win_rate``,
  the item's mean over its decided turns, so that the mean over items is
  FastChat's ``(wins + 0.5·ties) / games`` whenever no game errs (FastChat pools the games).

Judge prompts come from, in order: the benchmark's ``judge_prompts`` option, the
``DISTILLBENCH_JUDGE_PROMPTS`` environment variable, an installed FastChat
checkout, and otherwise distillbench's own pocket prompt set (our wording, the
official layout), which the protocol records as such.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from annotated_types import Gt

from distillbench.core.errors import UserInputError
from distillbench.kinds.text_lm.generation import generate_responses

from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.benchmarks.judges import judge_options, make_judge
from distillbench.benchmarks.mtbench_judging import (ANSWER_TEMPERATURES, NEED_REF_CATS, combine_swapped, default_judge_prompts_path,
                              judge_prompt_name, load_judge_prompts, mean_rating, parse_rating, parse_verdict,
                              render_pairwise, render_single)
from distillbench.benchmarks.sources import check_source, load_source, source_fingerprint

__all__ = ["MTBench", "parse_rating", "parse_verdict", "resolve_judge_prompts"]

# FastChat's gen_model_answer: categories missing from temperature_config sample at 0.7.
DEFAULT_ANSWER_TEMPERATURE = 0.7
_VERDICT_VALUE = {"A": 1.0, "tie": 0.5, "B": 0.0}

POCKET_JUDGE_PROMPTS = Path(__file__).parent / "data" / "pocket_judge_prompts.jsonl"


def resolve_judge_prompts(explicit: str | None) -> tuple[Path, str]:
    """(path, name of the prompt set) of the judge prompts to use."""
    for candidate, label in ((explicit, "user file"), (os.environ.get("DISTILLBENCH_JUDGE_PROMPTS"), "user file"),
                             (default_judge_prompts_path(), "fastchat")):
        if candidate:
            return Path(candidate), label
    return POCKET_JUDGE_PROMPTS, "distillbench-pocket-v1"


@functools.lru_cache(maxsize=8)
def _prompts(path: Path) -> dict[str, dict]:
    return load_judge_prompts(path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@register_benchmark("mtbench", family="llm", paper="Zheng et al. 2023, arXiv:2306.05685",
                    summary="MT-Bench (FastChat question.jsonl): single 1-10 or pairwise-vs-baseline judging")
@dataclass(frozen=True)
class MTBench(Benchmark):
    """MT-Bench in FastChat's files: questions, reference answers, judge prompts, optional baseline answers."""

    questions: str | None = None  # FastChat question.jsonl: a local file or hf:<id>@<revision>
    reference_answers: str | None = None  # FastChat model_answer format (reference_answer/gpt-4.jsonl)
    judge: str = "openai-http"
    judge_model: str | None = None  # the backend's model; None keeps its default (gpt-4 for openai-http)
    judge_url: str | None = None  # the backend's endpoint; None keeps its default
    judge_prompts: str | None = None
    mode: Literal["single", "pairwise"] = "single"
    baseline_answers: str | None = None  # pairwise: the baseline's answers, FastChat model_answer format
    max_new_tokens: Annotated[int, Gt(0)] = 1024  # FastChat gen_model_answer's default

    need_ref_categories: ClassVar[tuple[str, ...]] = NEED_REF_CATS
    # distillbench's own pocket prompt set has the official layout but not the official wording.
    accepts_pocket_prompts: ClassVar[bool] = False

    def check(self):
        problems = self._source_problems()
        if not self.accepts_pocket_prompts and resolve_judge_prompts(self.judge_prompts)[0] == POCKET_JUDGE_PROMPTS:
            problems.append("judge_prompts: give FastChat's judge_prompts.jsonl (llm_judge/data), or set "
                            "DISTILLBENCH_JUDGE_PROMPTS")
        _, judge_problems = judge_options(self.judge, self.judge_model, self.judge_url)
        problems += judge_problems
        if not judge_problems and hasattr(judge := make_judge(self.judge, self.judge_model, self.judge_url), "check"):
            problems += judge.check()
        if self.mode == "pairwise" and not self.baseline_answers:
            problems.append("baseline_answers: pairwise mode needs the baseline's answers (FastChat model_answer jsonl)")
        for option in ("reference_answers", "baseline_answers"):
            if getattr(self, option):
                problems += [f"{option}: {p.removeprefix('source: ')}" for p in check_source(getattr(self, option))]
        return problems

    def _source_problems(self) -> list[str]:
        if not self.questions:
            return ["questions: give FastChat's question.jsonl (a local file or hf:<id>@<revision>)"]
        return [f"questions: {p.removeprefix('source: ')}" for p in check_source(self.questions)]

    def answer_temperature(self, category: str) -> float:
        return ANSWER_TEMPERATURES.get(category, DEFAULT_ANSWER_TEMPERATURE)

    def questions_and_references(self) -> tuple[list[dict], dict[str, list[str]]]:
        questions = load_source(self.questions, "train", ("question_id", "category", "turns"))
        references = _answers_by_id(self.reference_answers) if self.reference_answers else {}
        return questions, references

    def items(self):
        questions, references = self.questions_and_references()
        baselines = _answers_by_id(self.baseline_answers) if self.mode == "pairwise" else {}
        items = []
        for question in questions:
            qid = str(question["question_id"])
            item = {"id": qid, **question, "reference": None, "baseline": None}
            if question["category"] in self.need_ref_categories:
                item["reference"] = _required(references, qid, "reference_answers", self.reference_answers)
            if self.mode == "pairwise":
                item["baseline"] = _required(baselines, qid, "baseline_answers", self.baseline_answers)
            items.append(item)
        return items

    def predict(self, model, tokenizer, items, *, batch_size):
        answers: list[list[str]] = [[] for _ in items]
        temperatures = [self.answer_temperature(item["category"]) for item in items]
        for temperature in sorted(set(temperatures)):
            group = [i for i, t in enumerate(temperatures) if t == temperature]
            for turn in range(2):
                conversations = [_conversation(items[i]["turns"], answers[i], turn) for i in group]
                replies = generate_responses(model, tokenizer, conversations, max_new_tokens=self.max_new_tokens,
                                             batch_size=batch_size, temperature=temperature,
                                             description=f"mtbench turn {turn + 1} (T={temperature})")
                for i, reply in zip(group, replies):
                    answers[i].append(reply)
        return answers

    def score(self, item, output):
        path, _ = resolve_judge_prompts(self.judge_prompts)
        prompts, judge = _prompts(path), make_judge(self.judge, self.judge_model, self.judge_url)
        if self.mode == "pairwise":
            return self._score_pairwise(item, output, prompts, judge)
        ratings, verdicts = {}, []
        for turn, multi_turn in (("turn1", False), ("turn2", True)):
            name = judge_prompt_name(item["category"], pairwise=False, multi_turn=multi_turn,
                                     need_ref_categories=self.need_ref_categories)
            system, user = render_single(prompts[name], item, output, item["reference"], multi_turn=multi_turn)
            verdict = judge.complete(system, user)
            verdicts.append(verdict)
            rating = parse_rating(verdict)
            if rating is not None:  # FastChat drops unparsable ratings
                ratings[turn] = rating
        overall = mean_rating(ratings.values())
        values = {**ratings, **({"score": overall} if overall is not None else {})}
        return ItemScore(values, " | ".join(verdicts))

    def _score_pairwise(self, item, output, prompts, judge) -> ItemScore:
        values, reasons = {}, []
        for turn, multi_turn in (("turn1", False), ("turn2", True)):
            prompt = prompts[judge_prompt_name(item["category"], pairwise=True, multi_turn=multi_turn,
                                               need_ref_categories=self.need_ref_categories)]
            games = [judge.complete(*render_pairwise(prompt, item, a, b, item["reference"], multi_turn=multi_turn))
                     for a, b in ((output, item["baseline"]), (item["baseline"], output))]
            result = combine_swapped(parse_verdict(games[0]), parse_verdict(games[1]))
            reasons.append(f"{turn}: {result} (game 1: {parse_verdict(games[0])}, swapped: {parse_verdict(games[1])})")
            if result != "error":  # FastChat drops games where either run erred
                values[f"{turn}_win"] = _VERDICT_VALUE[result]
        if values:
            values["win_rate"] = sum(values.values()) / len(values)
        return ItemScore(values, "; ".join(reasons), {"judgments": reasons})

    def protocol(self):
        path, prompt_set = resolve_judge_prompts(self.judge_prompts)
        judge = make_judge(self.judge, self.judge_model, self.judge_url)
        protocol: dict[str, Any] = {
            "scorer_version": self.scorer_version, "judge": judge.identity, "judge_prompts": prompt_set,
            "judge_prompts_sha256": _sha256(path), "mode": self.mode, "max_new_tokens": self.max_new_tokens,
            "answer_temperatures": self.temperature_protocol()}
        if self.mode == "pairwise":
            protocol["baseline_answers"] = source_fingerprint(self.baseline_answers)
        if self.questions:
            protocol["questions"] = source_fingerprint(self.questions)
        return protocol

    def temperature_protocol(self) -> str:
        return f"per category, FastChat temperature_config (else {DEFAULT_ANSWER_TEMPERATURE})"


def _answers_by_id(source: str) -> dict[str, list[str]]:
    """question id -> turns of the first choice, from a FastChat model_answer / reference_answer file."""
    answers = {}
    for number, record in enumerate(load_source(source, "train", ("question_id", "choices")), start=1):
        try:
            answers[str(record["question_id"])] = list(record["choices"][0]["turns"])
        except (KeyError, IndexError, TypeError):
            raise UserInputError(f"{source}: record {number}: choices[0].turns is missing") from None
    return answers


def _required(answers: dict[str, list[str]], qid: str, option: str, source: str | None) -> list[str]:
    if qid not in answers:
        raise UserInputError(f"{source or option}: no answer for question {qid} ({option})")
    return answers[qid]


def _conversation(turns: list[str], answers: list[str], turn: int) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": turns[0]}]
    if turn == 1:
        messages += [{"role": "assistant", "content": answers[0]}, {"role": "user", "content": turns[1]}]
    return messages
