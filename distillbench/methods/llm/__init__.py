"""LLM distillation and preference-alignment methods."""

from . import (adpa, adpa_plus, adpo, curry_dpo, dckd, distillm, dpo, gkd, ipo, kd, redi, rkl, sft, simpo,  # noqa: F401
               teacher_ref_dpo, tvd)
