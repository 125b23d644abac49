"""Training data: MATH-format records from a pocket generator or a local JSONL file, tokenized for SFT-style losses.

The pocket sources are what the pocket worlds register in `POCKET_DATA` under the families this kind reads:
``sft`` (records), ``preference`` and ``ranked`` (a JSONL file of pairs or ranked lists).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distillbench.core.errors import UserInputError
from distillbench.core.inputs import ABSENT_FINGERPRINT, input_absent
from distillbench.core.jsonl import read_jsonl
from distillbench.core.registry import POCKET_DATA

REQUIRED_FIELDS = ("problem", "solution")


TEXT_FAMILIES = ("sft", "preference", "ranked")  # the pocket data families a text student reads
PREFERENCE_FIELDS = ("prompt", "chosen", "rejected")
RANKED_FIELDS = ("prompt", "responses")


def pocket_sources() -> list[str]:
    """The registered pocket data sources of text students (imports every pocket data plug-in)."""
    return [entry.name for entry in POCKET_DATA.entries() if entry.family in TEXT_FAMILIES]


def is_pocket_source(source: str) -> bool:
    """Whether `source` is a pocket data source of text students (imports its plug-in only)."""
    return source in POCKET_DATA and POCKET_DATA.entry(source).family in TEXT_FAMILIES


def _pocket_reader(source: str, family: str) -> Callable[..., Any] | None:
    """The reader of `source` when it is a pocket source of `family`, else None."""
    if source in POCKET_DATA and (entry := POCKET_DATA.entry(source)).family == family:
        return entry.obj
    return None


def load_records(source: str, split: str, size: int | None, noise_fraction: float = 0.0,
                 conversations: int = 0, chatty_fraction: float = 0.0) -> list[dict[str, Any]]:
    """SFT records: generated pocket records (optional noise and two-turn chats) or a local JSONL file."""
    reader = _pocket_reader(source, "sft")
    if reader is not None:
        return reader(split, size, noise_fraction, conversations, chatty_fraction)
    records = read_jsonl(source, check=_sft_record_problem)
    return records[:size] if size else records


def _sft_record_problem(record: dict[str, Any]) -> str | None:
    """An SFT record is MATH-format {problem, solution} or a chat {messages: [...]}."""
    if isinstance(record.get("messages"), list):
        return None
    missing = next((field for field in REQUIRED_FIELDS if field not in record), None)
    return f"missing field {missing!r} (or a 'messages' list)" if missing else None


def problem_records(source: str, split: str, size: int | None) -> list[dict[str, Any]]:
    """SFT records that also carry the gold ``answer`` (for methods that sample their own solutions and
    check them): {problem, solution, answer}, never chats."""
    records = load_records(source, split, size)
    for number, record in enumerate(records, start=1):
        missing = next((field for field in ("problem", "answer") if field not in record), None)
        if missing is not None:
            raise UserInputError(f"{source}: record {number}: missing field {missing!r} (needed to sample and check "
                                 "solutions)")
    return records


def load_preferences(source: str) -> list[dict[str, Any]]:
    """Preference pairs: the pocket zoo's graded teacher samples, or a local JSONL file."""
    reader = _pocket_reader(source, "preference")
    return read_jsonl(reader() if reader is not None else source, PREFERENCE_FIELDS)


def load_ranked(source: str) -> list[dict[str, Any]]:
    """Ranked lists {prompt, responses: [{content, score}, ...]}, each with the same number of responses."""
    reader = _pocket_reader(source, "ranked")
    if reader is not None:
        source = str(reader())
    records = read_jsonl(source, RANKED_FIELDS)
    sizes = set()
    for number, record in enumerate(records, start=1):
        responses = record["responses"]
        if not isinstance(responses, list) or len(responses) < 2:
            raise UserInputError(f"{source}: record {number}: 'responses' must list at least 2 responses")
        if any(not isinstance(r, dict) or "content" not in r or not isinstance(r.get("score"), (int, float))
               for r in responses):
            raise UserInputError(f"{source}: record {number}: each response needs 'content' and a numeric 'score'")
        sizes.add(len(responses))
    if len(sizes) > 1:
        raise UserInputError(f"{source}: every record must rank the same number of responses (found {sorted(sizes)})")
    return records


def data_fingerprint(source: str | None) -> str | None:
    """What a cell key records of a data source: what its pocket world says, or the file's sha256."""
    if source is None:
        return None
    if source in POCKET_DATA:
        return POCKET_DATA.entry(source).extra["fingerprint"](source)
    if input_absent(source):
        return ABSENT_FINGERPRINT
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16]


def tokenize_conversation(tokenizer, messages: list[dict[str, str]], max_length: int) -> dict[str, list[int]]:
    """input_ids of a chat through the template; labels are the assistant turns' tokens, -100 elsewhere."""
    input_ids: list[int] = []
    labels: list[int] = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt_ids = _render(tokenizer, messages[:index], generation_prompt=True)
        full_ids = _render(tokenizer, messages[: index + 1], generation_prompt=False)
        if full_ids[: len(input_ids)] != input_ids or full_ids[: len(prompt_ids)] != prompt_ids:
            raise UserInputError("the tokenizer's chat template renders earlier turns differently in a longer conversation")
        labels += [-100] * (len(prompt_ids) - len(input_ids)) + full_ids[len(prompt_ids):]
        input_ids = full_ids
    return {"input_ids": input_ids[:max_length], "labels": labels[:max_length]}


def _render(tokenizer, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True,
                                              return_dict=False))


def tokenize_example(tokenizer, prompt: str, response: str, max_length: int) -> dict[str, list[int]]:
    """A single-turn (prompt, response) example; labels cover the response only."""
    return tokenize_conversation(tokenizer, [{"role": "user", "content": prompt},
                                             {"role": "assistant", "content": response}], max_length)


def tokenize_records(tokenizer, records: list[dict[str, Any]], max_length: int) -> list[dict[str, list[int]]]:
    """SFT records: MATH-format {problem, solution} or chat {messages: [...]}."""
    return [tokenize_conversation(tokenizer, r["messages"], max_length) if "messages" in r
            else tokenize_example(tokenizer, r["problem"], r["solution"], max_length) for r in records]


def _text(value: Any) -> str:
    """A message list in the HF chat format ([{"role", "content"}, ...]) or a plain string -> its last content."""
    if isinstance(value, list):
        return value[-1]["content"]
    return value


def tokenize_prompt_response(tokenizer, prompt: Any, response: str, max_length: int) -> dict[str, list[int]]:
    """A prompt (a string, or chat messages ending with a user turn, earlier turns included) and one
    response; labels cover the response only, never an earlier assistant turn of the prompt."""
    messages = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    prompt_ids = _render(tokenizer, messages, generation_prompt=True)
    full_ids = _render(tokenizer, messages + [{"role": "assistant", "content": response}], generation_prompt=False)
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise UserInputError("the tokenizer's chat template renders the prompt differently once a reply follows")
    labels = [-100] * len(prompt_ids) + full_ids[len(prompt_ids):]
    return {"input_ids": full_ids[:max_length], "labels": labels[:max_length]}


def tokenize_preferences(tokenizer, records: list[dict[str, Any]], max_length: int) -> list[dict[str, list[int]]]:
    """Preference records (prompt / chosen / rejected, as chat messages or strings) -> prefixed token lists.
    A multi-turn prompt keeps its earlier turns as context."""
    examples = []
    for record in records:
        example = {}
        for side in ("chosen", "rejected"):
            tokens = tokenize_prompt_response(tokenizer, record["prompt"], _text(record[side]), max_length)
            example.update({f"{side}_{key}": value for key, value in tokens.items()})
        examples.append(example)
    return examples


def sequence_prefixes(batch: dict[str, Any]) -> list[str]:
    """The sequences of a batch by key prefix: '' (sft), 'chosen_' and 'rejected_' (pairs), 'sample_' (on-policy)."""
    return [key.removesuffix("input_ids") for key in batch if key.endswith("input_ids")]


def tokenize_ranked(tokenizer, records: list[dict[str, Any]], max_length: int) -> list[dict[str, Any]]:
    """Ranked lists -> sequences ``rank0_`` (best) ... ``rank{K-1}_`` and their ``scores``, best first."""
    examples = []
    for record in records:
        ranked = sorted(record["responses"], key=lambda r: -r["score"])
        example: dict[str, Any] = {"scores": [float(r["score"]) for r in ranked]}
        for rank, response in enumerate(ranked):
            tokens = tokenize_prompt_response(tokenizer, record["prompt"], _text(response["content"]), max_length)
            example.update({f"rank{rank}_{key}": value for key, value in tokens.items()})
        examples.append(example)
    return examples


def collate(examples: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors for each sequence in the examples: `[prefix]input_ids`,
    `[prefix]attention_mask` and `[prefix]labels` (-100 on padding), for prefix '' (sft),
    'chosen_' / 'rejected_' (preference pairs) or 'rank0_' ... (ranked lists); other
    fields (a ranked list's scores) become float tensors."""
    import torch

    batch = {}
    for key in [k for k in examples[0] if k.endswith("input_ids")]:
        prefix = key.removesuffix("input_ids")
        width = max(len(e[key]) for e in examples)
        input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), -100, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, example in enumerate(examples):
            length = len(example[key])
            input_ids[row, :length] = torch.tensor(example[key])
            labels[row, :length] = torch.tensor(example[f"{prefix}labels"])
            attention_mask[row, :length] = 1
        batch.update({f"{prefix}input_ids": input_ids, f"{prefix}attention_mask": attention_mask,
                      f"{prefix}labels": labels})
    for key in [k for k in examples[0] if not k.endswith(("input_ids", "labels"))]:
        batch[key] = torch.tensor([e[key] for e in examples], dtype=torch.float)  # per-example values (scores)
    return batch
