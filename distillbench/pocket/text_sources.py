"""The pocket data sources of text students, registered in `POCKET_DATA` for the text-lm kind to read:

* ``pocket:math`` (family ``sft``): generated pocket-math problems with their solutions, optionally noisy,
  and two-turn pocket-mtbench-style training chats;
* ``pocket:math-preference`` (``preference``) and ``pocket:math-ranked`` (``ranked``): the graded samples of
  the zoo's teacher-sft (zoo entry ``math-preference``), as the JSONL files the kind reads.

A cell key records ``pocket:math`` by its name (its generator is part of the world) and the other two by
the zoo entry's spec hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distillbench.core.registry import POCKET_DATA
from distillbench.pocket.math_world import add_noise, generate
from distillbench.pocket.mtbench_world import training_conversations
from distillbench.pocket.zoo import ensure_built, specs

PREFERENCE_SET = "math-preference"  # the zoo entry that samples and grades the pairs


def _named(source: str) -> str:
    return source


def _preference_set_hash(source: str) -> str:
    return specs()[PREFERENCE_SET].spec_hash()


@POCKET_DATA.register("pocket:math", family="sft", fingerprint=_named,
                      summary="generated pocket-math problems and solutions, with optional noise and training chats")
def math_records(split: str, size: int | None, noise_fraction: float = 0.0, conversations: int = 0,
                 chatty_fraction: float = 0.0) -> list[dict[str, Any]]:
    """SFT records: `size` pocket-math problems of `split` (2000 by default) with their solutions, a
    `noise_fraction` of them noisy, then `conversations` two-turn chats (a `chatty_fraction` of their
    second answers chatty)."""
    records = add_noise(generate(split, size or 2000, seed=0), noise_fraction)
    return records + training_conversations(conversations, seed=2, noise_fraction=noise_fraction,
                                            chatty_fraction=chatty_fraction)


@POCKET_DATA.register("pocket:math-preference", family="preference", fingerprint=_preference_set_hash,
                      summary="preference pairs: graded samples of the zoo's teacher-sft")
def preference_pairs_file() -> Path:
    """The JSONL file of {prompt, chosen, rejected} pairs, built with the zoo when missing."""
    return ensure_built(PREFERENCE_SET) / "pairs.jsonl"


@POCKET_DATA.register("pocket:math-ranked", family="ranked", fingerprint=_preference_set_hash,
                      summary="ranked lists: the same graded samples, every response of a prompt with its score")
def ranked_lists_file() -> Path:
    """The JSONL file of {prompt, responses: [{content, score}, ...]} lists, built with the zoo when missing."""
    return ensure_built(PREFERENCE_SET) / "ranked.jsonl"
