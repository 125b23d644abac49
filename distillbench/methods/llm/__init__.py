"""LLM distillation and preference-alignment methods."""

from . import adpa, adpa_plus, dckd, distillm, dpo, gkd, ipo, kd, redi, rkl, sft, simpo, teacher_ref_dpo, tvd  # noqa: F401
