"""Teacher hacking — the controlled oracle → teacher → student setup.

Tiapkin, Calandriello, Ferret, Perrin, Vieillard, Ramé & Blondel, "On Teacher Hacking in
Language Model Distillation", arXiv:2502.02671.

The oracle is the pocket-math generator: its reference solutions are the ground truth. The
teacher (trained on oracle data) is distilled into the student with token-level forward KL
on teacher-written responses,

L = (1/N) Σ_t KL(π_T(·|s_t) ‖ πθ(·|s_t)),

either **offline** (one teacher response per prompt for a fixed pool of `offline_prompts`
problems, reused every epoch) or **online** (fresh teacher samples for every batch). Every
`every` steps the student is measured on held-out (dev) problems against both:

* golden distance, to the oracle: the mean token NLL of the oracle's solution, i.e. the
  per-token KL from the oracle's (one-hot) distribution to the student;
* proxy distance, to the teacher: the mean token KL(π_T ‖ πθ) at the same positions.

The paper's claim: with offline data the proxy keeps falling while the golden distance
turns back up (teacher hacking); online data prevents it. Teacher samples at temperature 1,
as in the paper's setup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from annotated_types import Gt

from distillbench.kinds.text_lm.data import collate, tokenize_example, tokenize_records
from distillbench.kinds.text_lm.generation import generate_responses
from distillbench.kinds.text_lm.logps import response_logits, shifted_labels
from distillbench.methods.base import Method, register_method
from distillbench.methods.llm.hooks import MakesExamples, OnPolicy
from distillbench.methods.llm.kd import forward_kl_loss


# The examples are never truncated: a sampled response is at most max_new_tokens long in both arms, and the
# offline arm's samples were cut at 256 tokens (prompt included) where the online arm's were not.
UNCUT = 1 << 20


@register_method("teacher-hacking", family="llm", paper="Tiapkin et al. 2025, arXiv:2502.02671",
                 summary="forward KL on offline vs online teacher samples, tracking distance to oracle and teacher")
@dataclass
class TeacherHacking(OnPolicy, MakesExamples, Method):
    """Distil on teacher samples, offline (a fixed pool) or online (fresh per step), and track
    the student's distance to the oracle and to the teacher."""

    data: Literal["offline", "online"] = "offline"
    offline_prompts: Annotated[int, Gt(0)] = 256
    temperature: Annotated[float, Gt(0)] = 1.0
    max_new_tokens: Annotated[int, Gt(0)] = 128
    every: Annotated[int, Gt(0)] = 25

    needs = ("teacher_logits", "validation")
    data_kind = "problems"
    sample_model = "teacher"

    def on_policy_probability(self, step):
        return 1.0 if self.data == "online" else 0.0

    def loss(self, student, batch):
        return {"forward_kl": forward_kl_loss(response_logits(student, batch), batch["teacher_logits"],
                                              shifted_labels(batch))}

    def make_examples(self, student, tokenizer, problems, seed, stage, frozen):
        """Online: every problem (its responses are replaced by fresh teacher samples at each step).
        Offline: one teacher sample for each problem of a fixed pool, made once."""
        if self.data == "online":
            return tokenize_records(tokenizer, problems, UNCUT)

        generator = torch.Generator().manual_seed(seed)
        pool = [problems[i] for i in torch.randperm(len(problems), generator=generator)[: self.offline_prompts]]
        torch.manual_seed(seed)
        responses = generate_responses(frozen["teacher"], tokenizer,
                                       [[{"role": "user", "content": p["problem"]}] for p in pool],
                                       max_new_tokens=self.max_new_tokens, batch_size=64,
                                       temperature=self.temperature, description="offline teacher samples")
        return [tokenize_example(tokenizer, p["problem"], response, UNCUT) for p, response in zip(pool, responses)]

    def after_step(self, run):
        """Every `every` steps, and after the last one, the student's distances on the validation examples."""
        done = run.step + 1
        if done % self.every and done != run.budget.steps:
            return super().after_step(run)
        return self.measure(run.unwrapped, run.frozen, run.batching.validation, run.batching.pad_id)

    @torch.no_grad()
    def measure(self, student, frozen, validation, pad_id):
        """Golden distance (NLL of the oracle's solutions) and proxy distance (KL from the teacher)."""
        was_training = student.training
        student.eval()
        device = next(student.parameters()).device
        nll = kl = tokens = 0.0
        for start in range(0, len(validation), 64):
            batch = {k: v.to(device) for k, v in collate(validation[start:start + 64], pad_id).items()}
            logits, labels = response_logits(student, batch), shifted_labels(batch)
            teacher = response_logits(frozen["teacher"], batch)
            count = int((labels != -100).sum())
            nll += torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1),
                                                     ignore_index=-100, reduction="sum").item()
            kl += forward_kl_loss(logits, teacher, labels).item() * count
            tokens += count
        student.train(was_training)
        return {"golden_distance": nll / max(tokens, 1), "proxy_distance": kl / max(tokens, 1)}
