"""LLM distillation and preference-alignment methods."""

from distillbench.methods.llm import (adpa, adpa_plus, adpo, curry_dpo, dckd, distillm, dpo, gkd, ipo, kd, mcts_dpo, redi, rkl, sft,  # noqa: F401
               simpo, spo, teacher_hacking, teacher_ref_dpo, tvd)
