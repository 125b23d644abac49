"""GSM8K scoring as lm-evaluation-harness defines it (``lm_eval/tasks/gsm8k/gsm8k.yaml``, version 3.0).

The task reports two numbers from one generation, differing only in how the answer is found:

* ``strict-match``: the regex filter ``#### (\\-?[0-9\\.\\,]+)``, first match (the model must
  copy GSM8K's ``#### <answer>`` convention);
* ``flexible-extract``: the regex filter ``(-?[$0-9.,]{2,})|(-?[0-9]+)`` with ``group_select: -1``,
  i.e. the last number-like run anywhere in the output.

lm-eval's ``RegexFilter`` (``lm_eval/filters/extraction.py``) returns ``[invalid]`` when nothing
matches and strips what it extracts. Both are then scored by ``exact_match`` with
``ignore_case: true`` and ``regexes_to_ignore`` ``,``, ``\\$``, ``(?s).*#### ``, ``\\.$`` applied in
that order to prediction and reference alike; the reference is the whole GSM8K ``answer`` field,
which the third regex cuts down to the text after ``#### ``. No numeric comparison happens:
``1000.00`` and ``1000`` differ.
"""

from __future__ import annotations

import re

INVALID = "[invalid]"
STRICT_PATTERN = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE_PATTERN = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
# exact_match's regexes_to_ignore, in gsm8k.yaml's order: the last two only make sense after
# the first two (a "$" or "," before "#### " does not matter, a trailing "." after "18" does).
IGNORED_PATTERNS = (",", r"\$", r"(?s).*#### ", r"\.$")


def extract_strict(text: str) -> str:
    """The first ``#### <number>`` in ``text``, else ``[invalid]``."""
    match = STRICT_PATTERN.search(text)
    return match.group(1).strip() if match else INVALID


def extract_flexible(text: str) -> str:
    """The last number-like match in ``text``, else ``[invalid]``.

    The pattern has two groups and only one takes part in a match; lm-eval keeps the first
    non-empty group of the last match (``group_select: -1``), which is this.
    """
    matches = list(FLEXIBLE_PATTERN.finditer(text))
    if not matches:
        return INVALID
    groups = [group for group in matches[-1].groups() if group]
    return groups[0].strip() if groups else INVALID


def normalize(text: str) -> str:
    """exact_match's view of a string: the ignored patterns deleted in order, then lower case."""
    for pattern in IGNORED_PATTERNS:
        text = re.sub(pattern, "", text)
    return text.lower()


def score(output: str, gold_solution: str) -> dict[str, int]:
    """``strict_match`` and ``flexible_extract`` (0 or 1) for one output.

    ``gold_solution`` is GSM8K's ``answer`` field (reasoning, then ``#### <answer>``); a bare
    answer works too, since normalisation only cuts up to ``#### `` when there is one.
    """
    gold = normalize(gold_solution)
    return {
        "strict_match": int(normalize(extract_strict(output)) == gold),
        "flexible_extract": int(normalize(extract_flexible(output)) == gold),
    }
