"""ADPA+ — ADPA started from the DCKD student.

Gao, Wan, Guo, Quan & Wang, "Advantage-Guided Distillation for Preference Alignment in
Small Language Models", ICLR 2025, arXiv:2502.17927: the combination the paper reports
as strongest. The loss is ADPA's (see `adpa`); the student is the recipe's ``dckd``
student of the same seed, so the recipe must also list ``dckd``.
"""

from __future__ import annotations

from dataclasses import dataclass

from distillbench.methods.base import register_method
from distillbench.methods.llm.adpa import ADPA


@register_method("adpa+", family="llm", paper="Gao et al. 2025, arXiv:2502.17927",
                 summary="ADPA continued from the DCKD student")
@dataclass
class ADPAPlus(ADPA):
    """ADPA on top of DCKD."""

    starts_from = "dckd"
