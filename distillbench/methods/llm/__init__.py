"""LLM distillation and preference-alignment methods."""

from . import dpo, gkd, kd, rkl, sft, tvd  # noqa: F401
