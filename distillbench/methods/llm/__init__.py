"""LLM distillation and preference-alignment methods."""

from . import dpo, gkd, ipo, kd, rkl, sft, simpo, tvd  # noqa: F401
