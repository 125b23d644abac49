"""hf-chat: a local Hugging Face chat model as the judge (greedy, as FastChat judges at temperature 0).

The model is any reference distillbench can load (``hf:<id>@<rev>``, a local
directory, ``pocket:<name>``); it is loaded once per process. The system prompt
goes in as the system message; for chat templates that refuse a system role it
is prepended to the user message instead, which is what FastChat's conversation
templates do for models without one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from distillbench.core.models import validate_model_ref
from distillbench.kinds.text_lm.models import load_causal_lm
from distillbench.core.registry import JUDGES
from distillbench.kinds.text_lm.generation import generate_responses


@functools.lru_cache(maxsize=2)
def _load(model: str, trust_remote_code: bool):
    loaded, tokenizer = load_causal_lm(model, trust_remote_code=trust_remote_code)
    return loaded.eval(), tokenizer


@JUDGES.register("hf-chat", family="llm", paper="MT-Bench judge protocol (arXiv:2306.05685)",
                 summary="a local Hugging Face chat model as the judge (greedy decoding)")
@dataclass(frozen=True)
class HFChatJudge:
    """A local chat model judging greedily; `model` is a distillbench model reference."""

    model: str = ""
    max_new_tokens: int = 2048  # FastChat's judge max_tokens; a cut-off verdict has no [[rating]] (-1)
    trust_remote_code: bool = False

    @property
    def identity(self) -> str:
        return f"hf-chat:{self.model}"

    def check(self) -> list[str]:
        if not self.model:
            return ["judge_model: hf-chat needs a model (hf:<id>@<rev>, a local directory or pocket:<name>)"]
        try:
            validate_model_ref(self.model)
        except ValueError as error:
            return [f"judge_model: {error}"]
        return []

    def complete(self, system: str, user: str) -> str:
        model, tokenizer = _load(self.model, self.trust_remote_code)
        conversation = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        try:
            tokenizer.apply_chat_template(conversation, tokenize=False)
        except Exception:  # templates without a system role raise (jinja raise_exception) on it
            conversation = [{"role": "user", "content": f"{system}\n\n{user}"}]
        return generate_responses(model, tokenizer, [conversation], max_new_tokens=self.max_new_tokens,
                                  batch_size=1, temperature=0.0, description="judge")[0]
