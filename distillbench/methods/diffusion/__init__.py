"""Diffusion distillation methods (issue #24): a few-step generator trained against a frozen diffusion teacher."""
