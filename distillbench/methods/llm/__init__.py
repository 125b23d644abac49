"""LLM distillation and preference-alignment methods."""
