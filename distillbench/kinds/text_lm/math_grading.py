"""Graders for MATH-format answers: ``math-verify`` (the default), ``minerva``, ``hendrycks`` and
``minerva-lm-eval``.

The first three disagree on purpose: they are the three rules published MATH numbers were scored
with, and a leaderboard has to say which one it used. Each of them first tries a string-equality
shortcut, so an answer identical to the gold is never scored wrong. ``minerva-lm-eval`` is
``minerva`` without that shortcut, to reproduce lm-eval's own numbers.

``math-verify``
    Hugging Face's Math-Verify: it extracts the last answer that parses (``\\boxed{}`` first, then
    LaTeX and plain expressions) and checks it against the gold by string, numeric and symbolic
    equality. Shortcut: the last ``\\boxed{}`` equals the gold after stripping whitespace.

``minerva``
    lm-evaluation-harness ``minerva_math`` (``lm_eval/tasks/minerva_math/utils.py``, read at
    commit 4e7e0d4), i.e. Lewkowycz et al. (2022), appendix D:

    * extraction: ``Final Answer: The final answer is(.*?). I hope it is correct.`` on the output
      with ``I hope it is correct.`` appended (so an answer cut by that stop sequence still
      matches); no match gives ``[invalidanswer]``. lm-eval does **not** fall back to the last
      ``\\boxed{}`` for this metric (only its separate ``math_verify`` metric reads boxes), so
      neither do we: an output that only boxes its answer scores 0 here.
    * ``normalize_final_answer`` on both sides (see :func:`minerva_normalize`).
    * shortcut (ours): normalised strings equal and non-empty. lm-eval at that commit has none,
      so identical tuples, intervals and matrices score 0 there (lm-eval issue #4030; its PR
      #4034, later than that commit, adds the same shortcut).
    * equivalence: sympy ``parse_latex`` on both, then ``simplify(a - b) == 0`` under a 5 s
      SIGALRM limit; any failure is "not equivalent". sympy's ANTLR parser only runs with
      ``antlr4-python3-runtime`` 4.11 (lm-eval pins it in its ``math`` extra, and distillbench
      installs math-verify with that runtime); where another version is installed the grader
      compares normalised strings only and says so in the reason and the protocol.

``minerva-lm-eval``
    lm-eval's ``minerva_math`` ``exact_match`` as that commit computes it: ``minerva`` without our
    shortcut, so an answer sympy cannot parse (a tuple, an interval, a matrix, a set, ...) scores 0
    even when it is identical to the gold; 28 of MATH-500's 500 gold answers score 0 against
    themselves. An output without the answer line is compared as lm-eval compares it, as the text
    ``[invalidanswer]``. lm-eval's ``process_docs`` takes the gold from the solution's last box;
    MATH-500's ``answer`` field is that box's content for all 500 records, so grading against the
    item's gold gives its numbers. lm-eval's task does not load without antlr4-python3-runtime
    4.11, and without sympy's parser these numbers cannot be had, so the benchmarks refuse this
    grader there (:func:`grader_problems`) instead of scoring it another way.

``hendrycks``
    lm-evaluation-harness ``hendrycks_math`` (``lm_eval/tasks/hendrycks_math/utils.py``, same
    commit), whose ``is_equiv`` is a copy of the MATH release's (Hendrycks et al. 2021,
    ``modeling/math_equivalence.py``) with one change that we follow: a non-integer ``a/b`` raises in
    ``fix_a_slash_b`` (the release left it unchanged), so such answers are compared as raw strings.
    Both remove only the escaped percent sign ``\\%``: their second ``replace("\\%", "")`` spells the
    same two characters (``"\\%"`` equals ``"\\\\%"`` in Python), so a bare ``%`` stays in both.

    * extraction: lm-eval's ``process_results`` never looks for ``\\boxed{}`` in the output; it
      takes the text between the first and the last ``$`` when there are two or more, else the
      whole output. That scores every boxed answer wrong (``\\boxed{7}`` is not ``7``), so we
      first take the content of the last complete ``\\boxed{}``/``\\fbox{}``/``\\boxed x`` when
      there is one, as the MATH release's own ``eval_math_gpt.py`` does for model outputs
      (``remove_boxed(last_boxed_only_string(output))``) and as lm-eval does for the gold
      solution; without a box, lm-eval's ``$`` rule applies unchanged.
    * ``strip_string`` on both sides (see :func:`hendrycks_normalize`), then exact equality;
      if normalisation raises, the raw strings are compared instead.
    * shortcut: the extracted text equals the gold after stripping whitespace. It almost never
      changes a verdict (equal strings normalise equally); it can where lm-eval's normalisation
      raises and its raw-string fallback then sees the stray whitespace (``" \\pi/2"`` against
      ``"\\pi/2"``: lm-eval says different, the shortcut says equal).
"""

from __future__ import annotations

import re
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

GRADERS = ("math-verify", "minerva", "hendrycks", "minerva-lm-eval")
# The graders that read Minerva's "Final Answer: ..." line, and so need the prompt to ask for it.
MINERVA_GRADERS = ("minerva", "minerva-lm-eval")


@dataclass(frozen=True)
class Grade:
    correct: bool
    extracted: str | None
    reason: str


# ----------------------------------------------------------------------------- boxes

def _matching_brace(text: str, opening: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``opening``, or None when it never closes."""
    depth = 0
    for index in range(opening, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def last_boxed_content(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, ``\\fbox{...}`` or ``\\boxed x`` (braces matched).

    lm-eval's ``last_boxed_only_string`` accepts the same three forms; the spaced form
    runs to the next ``$``. Unlike that function (which prefers ``\\boxed `` wherever it occurs),
    whichever form occurs last wins, so "several boxes, the last counts" holds for all of them.
    """
    start, opener = max((text.rfind(opener), opener) for opener in ("\\boxed{", "\\fbox{", "\\boxed "))
    if start < 0:
        return None
    if opener == "\\boxed ":
        return text[start + len(opener):].split("$")[0]
    closing = _matching_brace(text, start + len(opener) - 1)
    return None if closing is None else text[start + len(opener):closing]


# ----------------------------------------------------------------------------- math-verify

def grade_math_verify(output: str, gold_answer: str) -> Grade:
    boxed = last_boxed_content(output)
    if boxed is not None and boxed.strip() == gold_answer.strip():
        return Grade(True, boxed.strip(), f"math-verify: string match on the boxed answer {boxed.strip()!r}")
    gold = parse(f"${gold_answer}$", extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()])
    predicted = parse(output, extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()])
    if not predicted:
        return Grade(False, None, "math-verify: no answer could be extracted")
    extracted = str(predicted[-1])
    if verify(gold, predicted):
        return Grade(True, extracted, f"math-verify: {extracted} equals {gold_answer}")
    return Grade(False, extracted, f"math-verify: {extracted} differs from {gold_answer}")


# ----------------------------------------------------------------------------- hendrycks

def hendrycks_extract(output: str) -> tuple[str, str]:
    """(prediction, where it came from): last box, else lm-eval's first-to-last ``$`` rule."""
    boxed = last_boxed_content(output)
    if boxed is not None:
        return boxed, "last \\boxed{}"
    dollars = [index for index, char in enumerate(output) if char == "$"]
    if len(dollars) >= 2:
        return output[dollars[0] + 1:dollars[-1]], "text between the first and last $"
    return output, "whole output"


def _drop_right_units(text: str) -> str:
    # MATH writes units as "\text{ cm}" (with the space); a second such group is unexpected,
    # and lm-eval asserts it away, which sends is_equiv to its raw-string fallback.
    if "\\text{ " not in text:
        return text
    parts = text.split("\\text{ ")
    if len(parts) != 2:
        raise ValueError("more than one '\\text{ ' unit group")
    return parts[0]


def _brace_sqrt_arguments(text: str) -> str:
    """``\\sqrt3`` -> ``\\sqrt{3}`` (one character is the argument when no brace follows)."""
    head, *pieces = text.split("\\sqrt")
    for piece in pieces:
        # An empty piece (a trailing "\sqrt") raises IndexError, as lm-eval's fix_sqrt does.
        head += "\\sqrt" + (piece if piece[0] == "{" else "{" + piece[0] + "}" + piece[1:])
    return head


def _brace_frac_arguments(text: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{72}`` -> ``\\frac{1}{72}``; ``\\frac{72}1`` is left."""
    head, *pieces = text.split("\\frac")
    for piece in pieces:
        head += "\\frac"
        if piece[0] == "{":  # empty piece: IndexError, as in lm-eval's fix_fracs
            head += piece
        elif len(piece) < 2:
            return text  # lm-eval gives up and returns its input unchanged
        elif piece[1] != "{":
            head += "{" + piece[0] + "}{" + piece[1] + "}" + piece[2:]
        else:
            head += "{" + piece[0] + "}" + piece[1:]
    return head


def _integer_slash_to_frac(text: str) -> str:
    """``3/4`` -> ``\\frac{3}{4}`` for plain integers only.

    A non-integer side (``\\pi/2``) raises ValueError: lm-eval's ``fix_a_slash_b`` catches only
    the AssertionError of its canonical-form check, so is_equiv falls back to raw strings.
    """
    parts = text.split("/")
    if len(parts) != 2:
        return text
    numerator, denominator = int(parts[0]), int(parts[1])
    if text != f"{numerator}/{denominator}":  # "03/4", "+3/4": not canonical, left alone
        return text
    return f"\\frac{{{numerator}}}{{{denominator}}}"


def hendrycks_normalize(answer: str) -> str:
    """lm-eval's ``strip_string``, step by step in its order. May raise (see is_equiv)."""
    for old, new in (("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"),
                     ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", "")):
        answer = answer.replace(old, new)
    answer = _drop_right_units(answer)
    answer = answer.replace("\\%", "")  # as lm-eval and the MATH release: a bare "%" stays
    answer = answer.replace(" .", " 0.").replace("{.", "{0.")
    if not answer:
        return answer
    if answer[0] == ".":
        answer = "0" + answer
    sides = answer.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "k = 5", "x=5": keep the value (before spaces go)
        answer = sides[1]
    answer = _brace_sqrt_arguments(answer)
    answer = answer.replace(" ", "")
    answer = _brace_frac_arguments(answer)
    if answer == "0.5":  # the only decimal strip_string rewrites
        answer = "\\frac{1}{2}"
    return _integer_slash_to_frac(answer)


def _hendrycks_compare(prediction: str, gold: str) -> tuple[bool, str]:
    """(equal, how): exact equality after normalisation, raw equality when normalisation raises."""
    try:
        ours, theirs = hendrycks_normalize(prediction), hendrycks_normalize(gold)
        return ours == theirs, f"normalised {ours!r} vs {theirs!r}"
    except Exception as error:  # lm-eval catches every Exception here, so do we
        return prediction == gold, f"normalisation raised {type(error).__name__}, raw strings compared"


def hendrycks_is_equiv(prediction: str, gold: str) -> bool:
    """lm-eval's hendrycks_math ``is_equiv`` on two answer strings."""
    return _hendrycks_compare(prediction, gold)[0]


def grade_hendrycks(output: str, gold_answer: str) -> Grade:
    prediction, source = hendrycks_extract(output)
    said = f"hendrycks: {prediction!r} from the {source}"
    if prediction.strip() and prediction.strip() == gold_answer.strip():
        return Grade(True, prediction, f"{said}: string match")
    equal, how = _hendrycks_compare(prediction, gold_answer)
    return Grade(equal, prediction, f"{said}: {how}: {'equal' if equal else 'differ'}")


# ----------------------------------------------------------------------------- minerva

MINERVA_INVALID = "[invalidanswer]"
# What a prompt must ask for when minerva grades the generations: lm-eval pairs the rule with a 4-shot
# prompt whose solutions end in this line; a zero-shot prompt has to ask for it, or nothing is read.
MINERVA_INSTRUCTION = ('End your solution with the line "Final Answer: The final answer is $ANSWER$. '
                       'I hope it is correct." with your final answer in place of ANSWER.')


def answer_instruction(grader: str) -> str | None:
    """The answer format a grader needs the prompt to ask for (only the minerva graders need one)."""
    return MINERVA_INSTRUCTION if grader in MINERVA_GRADERS else None


def grader_protocol(grader: str) -> dict[str, str]:
    """What a protocol must say beyond the grader's name: minerva's prompt line, and whether its
    equivalence step ran sympy here or compared normalised strings only (sympy's LaTeX parser needs
    antlr4-python3-runtime 4.11; an environment with math-verify's default 4.13 lacks it), since the two give
    different numbers."""
    if grader not in MINERVA_GRADERS:
        return {}
    _, unavailable = _sympy_latex_parser()
    equivalence = f"normalised strings only ({unavailable})" if unavailable else "normalised strings, then sympy"
    return {"instruction": MINERVA_INSTRUCTION, "minerva_equivalence": equivalence}


def grader_problems(grader: str) -> list[str]:
    """Why `grader` cannot give its numbers here (for a benchmark's ``check``): minerva-lm-eval needs
    sympy's LaTeX parser, as lm-eval's task does (it refuses to load without antlr4-python3-runtime 4.11)."""
    if grader != "minerva-lm-eval":
        return []  # and sympy is not imported for the others
    _, unavailable = _sympy_latex_parser()
    return [f"grader: minerva-lm-eval reproduces lm-eval only with sympy's LaTeX parser: {unavailable}"] \
        if unavailable else []


# The dots are unescaped in lm-eval: "(.*?)." eats the full stop after the answer, and "."
# does not cross newlines, so a line break inside the answer means no match.
_MINERVA_ANSWER = re.compile(r"Final Answer: The final answer is(.*?). I hope it is correct.")
_MINERVA_END = "I hope it is correct."

# normalize_final_answer's two tables, in their order (Lewkowycz et al. 2022, appendix D).
MINERVA_SUBSTITUTIONS = (
    ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), ("\\ ", ""), (" ", ""), ("mbox", "text"),
    (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"),
)
# Plain substring deletion: "ft" also eats the "ft" of "\left", so "\left(" becomes "\le(".
MINERVA_REMOVED_EXPRESSIONS = (
    "square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units",
    "\\ldots", "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm",
    "pounds", "meters", "meals", "edges", "students", "childrentickets", "multiples",
    "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3", "\\text{\n}", "\\text{}",
    "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", '"', "\\dots",
)


def minerva_extract(output: str) -> str:
    match = _MINERVA_ANSWER.search(output + _MINERVA_END)
    return match.group(1).strip() if match else MINERVA_INVALID


def minerva_normalize(answer: str) -> str:
    """lm-eval's ``normalize_final_answer``: the steps of Lewkowycz et al. (2022), appendix D."""
    answer = answer.split("=")[-1]
    for old, new in MINERVA_SUBSTITUTIONS:
        answer = answer.replace(old, new)
    for expression in MINERVA_REMOVED_EXPRESSIONS:
        answer = answer.replace(expression, "")
    answer = re.sub(r"(.*?)\$(.*?)\$(.*)", r"$\2$", answer)  # keep the first $...$ only
    for command in ("text", "textbf", "overline"):
        answer = re.sub(rf"\\{command}\{{(.*?)\}}", r"\1", answer)  # up to the first "}"
    answer = re.sub(r"\\boxed\{(.*)\}", r"\1", answer)  # up to the last "}"
    answer = re.sub(r"frac([^{])(.)", r"frac{\1}{\2}", answer)  # \frac12 -> \frac{1}{2}
    answer = re.sub(r"sqrt([^{])", r"sqrt{\1}", answer)  # \sqrt3 -> \sqrt{3}
    answer = answer.replace("$", "")
    if answer.replace(",", "").isdigit():  # 100,000 -> 100000, only for pure digit strings
        answer = answer.replace(",", "")
    return answer


@cache
def _sympy_latex_parser():
    """(parse_latex, None) when sympy's ANTLR LaTeX parser runs here, else (None, why not)."""
    try:
        from sympy.parsing.latex import parse_latex

        parse_latex("1")
        return parse_latex, None
    except ImportError:
        try:
            installed = version("antlr4-python3-runtime")
        except PackageNotFoundError:
            installed = "none"
        return None, f"sympy parse_latex needs antlr4-python3-runtime 4.11, found {installed}"


def minerva_uses_sympy() -> bool:
    """Whether the minerva grader can run sympy here, rather than comparing normalised strings."""
    return _sympy_latex_parser()[0] is not None


@contextmanager
def _time_limit(seconds: float):
    """Raise TimeoutError after ``seconds``, with SIGALRM as lm-eval does.

    Signals only reach the main thread, so elsewhere the block runs without a limit.
    """
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"sympy took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def minerva_sympy_equal(normalized_prediction: str, normalized_gold: str, timeout_s: float = 5.0) -> bool:
    """lm-eval's minerva ``is_equiv``: parse both, ``simplify(a - b) == 0``; any failure is False."""
    parse_latex, unavailable = _sympy_latex_parser()
    if parse_latex is None:
        raise RuntimeError(unavailable)
    import sympy

    try:
        with _time_limit(timeout_s):
            return bool(sympy.simplify(parse_latex(normalized_prediction) - parse_latex(normalized_gold)) == 0)
    except Exception:  # parse errors, TypeError on subtraction, timeouts: lm-eval scores all of them 0
        return False


def grade_minerva(output: str, gold_answer: str) -> Grade:
    extracted = minerva_extract(output)
    if extracted == MINERVA_INVALID:
        return Grade(False, None, "minerva: no 'Final Answer: The final answer is ... I hope it is correct.' "
                                  f"line, so {MINERVA_INVALID} (lm-eval does not fall back to \\boxed{{}})")
    prediction, gold = minerva_normalize(extracted), minerva_normalize(gold_answer)
    said = f"minerva: {extracted!r} normalised to {prediction!r} vs {gold!r}"
    if prediction and prediction == gold:  # two empty strings are not an answer
        return Grade(True, extracted, f"{said}: string match")
    parse_latex, unavailable = _sympy_latex_parser()
    if parse_latex is None:
        return Grade(False, extracted, f"{said}: differ ({unavailable}; normalised strings compared only)")
    if minerva_sympy_equal(prediction, gold):
        return Grade(True, extracted, f"{said}: sympy finds them equal")
    return Grade(False, extracted, f"{said}: sympy finds them different or cannot parse them")


def grade_minerva_lm_eval(output: str, gold_answer: str) -> Grade:
    """lm-eval's minerva_math ``process_results`` at 4e7e0d4 (``exact_match``): extract, normalise,
    then ``is_equiv``, which is sympy alone, with no string shortcut and no special case for
    ``[invalidanswer]`` (lm_eval/tasks/minerva_math/utils.py, process_results and is_equiv)."""
    problems = grader_problems("minerva-lm-eval")
    if problems:
        raise RuntimeError(problems[0])
    extracted = minerva_extract(output)
    prediction, gold = minerva_normalize(extracted), minerva_normalize(gold_answer)
    found = None if extracted == MINERVA_INVALID else extracted
    said = f"minerva-lm-eval: {extracted!r} normalised to {prediction!r} vs {gold!r}"
    if minerva_sympy_equal(prediction, gold):
        return Grade(True, found, f"{said}: sympy finds them equal")
    if prediction == gold:  # lm-eval #4030: no string shortcut at that commit
        return Grade(False, found, f"{said}: identical, but sympy does not find them equal, so lm-eval scores 0")
    return Grade(False, found, f"{said}: sympy finds them different or cannot parse them")


# ----------------------------------------------------------------------------- dispatch

_GRADE = {"math-verify": grade_math_verify, "minerva": grade_minerva, "hendrycks": grade_hendrycks,
          "minerva-lm-eval": grade_minerva_lm_eval}


def grade(output: str, gold_answer: str, grader: str = "math-verify") -> Grade:
    if grader not in _GRADE:
        raise ValueError(f"unknown grader {grader!r}; known: {', '.join(GRADERS)}")
    return _GRADE[grader](output, gold_answer)
