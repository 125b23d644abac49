"""LLM distillation and preference-alignment methods."""

from . import dpo, kd, sft  # noqa: F401
