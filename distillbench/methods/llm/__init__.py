"""LLM distillation and preference-alignment methods."""

from . import kd, sft  # noqa: F401
