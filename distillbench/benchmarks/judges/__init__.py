"""Judge backends: each takes the rendered official judge prompt and returns the judge's text.

A backend is a registered frozen dataclass whose fields are its options, with an
``identity`` (recorded in provenance) and one method, ``complete(system, user) -> str``
(a chat completion); the official parsing rules
(`distillbench.benchmarks.mtbench_judging`) read the verdict out of what it
returns. Each backend's module registers it (`distillbench.plugins` lists them).
"""

from __future__ import annotations

import dataclasses

from distillbench.core.registry import JUDGES


def judge_options(name: str, model: str | None, url: str | None) -> tuple[dict, list[str]]:
    """The constructor options of judge `name` from a benchmark's judge_model / judge_url, and problems."""
    if name not in JUDGES:
        return {}, [f"judge: {JUDGES.unknown_message(name)}"]
    fields = {f.name for f in dataclasses.fields(JUDGES.get(name))}
    options, problems = {}, []
    for option, field, value in (("judge_model", "model", model), ("judge_url", "url", url)):
        if value is None:
            continue
        if field in fields:
            options[field] = value
        else:
            problems.append(f"{option}: judge {name!r} takes no {field}")
    return options, problems


def make_judge(name: str, model: str | None = None, url: str | None = None):
    options, problems = judge_options(name, model, url)
    if problems:
        raise ValueError("; ".join(problems))
    return JUDGES.get(name)(**options)
