"""MCTS-DPO — step-level preference pairs from a search over solution steps, trained with DPO.

Xie, Goyal, Zheng, Kan, Lillicrap, Kawaguchi & Shieh, "Monte Carlo Tree Search Boosts
Reasoning via Iterative Preference Learning", arXiv:2405.00451 (code: YuxiXie/MCTS-DPO).

At each node of a search over solution steps (a step is one sentence of the worked
solution, ending in ". " or in the boxed answer), the policy proposes `candidates` next
steps; each gets a value Q, the share of `rollouts` sampled completions from it whose final
answer is correct (pocket-math answers are checked exactly, as the paper checks GSM8K /
MATH answers). The highest- and lowest-Q siblings form a step-level pair when their Q
differ, and the search descends into the best child, to depth `depth`. The loss is DPO on
the step tokens only (the shared prefix is context):

L = −log σ(β · [(log πθ(s_w | x, prefix) − log π_ref(s_w | x, prefix)) − (same for s_l)])

Training is iterative: each of `iterations` equal shares of the steps starts by searching
with the current policy on `prompts` new training problems. Defaults: β = 0.1, depth 3
(the authors' math scripts), 4 candidates, 4 rollouts. Our search is a greedy best-first
expansion with Monte Carlo values, not the paper's full UCT tree with visit-count label
smoothing (its ``--conservative``); the reference is the student init, as in the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Gt

from distillbench.kinds.text_lm import math_grading
from distillbench.kinds.text_lm.generation import chat_prompt_ids
from distillbench.kinds.text_lm.logps import sequence_logps
from distillbench.kinds.text_lm.onpolicy import continue_ids
from distillbench.methods.base import Method, register_method
from distillbench.methods.llm.dpo import dpo_loss
from distillbench.methods.llm.hooks import MakesExamples

STEP_END = ". "


def first_step(text: str) -> str:
    """The first step of a continuation: up to and including the first '. ' (or all of it)."""
    end = text.find(STEP_END)
    return text if end < 0 else text[: end + len(STEP_END)]


@register_method("mcts-dpo", family="llm", paper="Xie et al. 2024, arXiv:2405.00451",
                 summary="step-level DPO on pairs from a Monte Carlo search over solution steps, iterated")
@dataclass
class MCTSDPO(MakesExamples, Method):
    """Iterative step-level DPO with pairs chosen by Monte Carlo values of candidate steps."""

    supports_chunked_loss = True  # its log-probs come from sequence_logps

    beta: Annotated[float, Gt(0)] = 0.1
    search_space = {"beta": (0.05, 0.1, 0.5)}  # DPO's β grid (methods/llm/dpo.py)
    iterations: Annotated[int, Gt(0)] = 2
    prompts: Annotated[int, Gt(0)] = 64
    depth: Annotated[int, Gt(0)] = 3
    candidates: Annotated[int, Gt(1)] = 4
    rollouts: Annotated[int, Gt(0)] = 4
    temperature: Annotated[float, Gt(0)] = 1.0
    max_new_tokens: Annotated[int, Gt(0)] = 96

    needs = ("reference_logps",)
    data_kind = "problems"
    normalize_by = "examples"

    @property
    def stages(self):
        return self.iterations

    def loss(self, student, batch):
        return {"dpo": dpo_loss(sequence_logps(student, batch, "chosen"), sequence_logps(student, batch, "rejected"),
                                batch["reference_chosen_logps"], batch["reference_rejected_logps"], self.beta)}

    def make_examples(self, student, tokenizer, problems, seed, stage, frozen):
        """Step-level pairs from searching with `student` on this iteration's share of the problems."""
        generator = torch.Generator().manual_seed(seed * 31 + stage)
        chosen = torch.randperm(len(problems), generator=generator)[: self.prompts].tolist()
        roots = [(problems[i], chat_prompt_ids(tokenizer, [{"role": "user", "content": problems[i]["problem"]}]))
                 for i in chosen]
        encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
        prefixes = ["" for _ in roots]
        pairs = []
        for _ in range(self.depth):
            live = [i for i, prefix in enumerate(prefixes) if prefix is not None]
            if not live:
                break
            contexts = [roots[i][1] + encode(prefixes[i]) for i in live for _ in range(self.candidates)]
            steps = [first_step(tokenizer.decode(ids, skip_special_tokens=True))
                     for ids in self._sample(student, tokenizer, contexts)]
            finals = [steps[n] for n in range(len(steps)) for _ in range(self.rollouts)]
            rollout_contexts = [contexts[n] + encode(steps[n]) for n in range(len(steps)) for _ in range(self.rollouts)]
            completions = [tokenizer.decode(ids, skip_special_tokens=True)
                           for ids in self._sample(student, tokenizer, rollout_contexts)]
            for slot, i in enumerate(live):
                problem, prompt = roots[i]
                options = steps[slot * self.candidates:(slot + 1) * self.candidates]
                values = []
                for c in range(self.candidates):
                    start = (slot * self.candidates + c) * self.rollouts
                    runs = [prefixes[i] + finals[start + r] + completions[start + r] for r in range(self.rollouts)]
                    values.append(sum(math_grading.grade(run, problem["answer"]).correct for run in runs) / self.rollouts)
                best, worst = max(range(len(values)), key=values.__getitem__), min(range(len(values)),
                                                                                     key=values.__getitem__)
                if values[best] > values[worst] and options[best] != options[worst]:
                    pairs.append(_pair(prompt + encode(prefixes[i]), options[best], options[worst], encode,
                                       tokenizer.eos_token_id))
                prefixes[i] = None if is_final(options[best]) else prefixes[i] + options[best]
        return pairs

    def _sample(self, student, tokenizer, contexts: list[list[int]]) -> list[list[int]]:
        return continue_ids(student, tokenizer, contexts, max_new_tokens=self.max_new_tokens,
                            temperature=self.temperature)


def is_final(step: str) -> bool:
    """A step that gives the boxed answer, or a continuation that ended without another step."""
    return "\\boxed{" in step or not step.endswith(STEP_END)


def _pair(context: list[int], chosen: str, rejected: str, encode, eos: int) -> dict:
    """A preference example whose labels cover only the step (and the eos of a final step)."""
    example = {}
    for side, step in (("chosen", chosen), ("rejected", rejected)):
        tokens = encode(step) + ([eos] if is_final(step) else [])
        example[f"{side}_input_ids"] = context + tokens
        example[f"{side}_labels"] = [-100] * len(context) + tokens
    return example
