"""Teacher-reference DPO — preference distillation with the teacher as DPO's reference.

The preference-distillation stage of LLaVA-MoD (Shu et al., "LLaVA-MoD: Making LLaVA Tiny
via MoE Knowledge Distillation", ICLR 2025, arXiv:2408.15881): the student is optimised
with the DPO loss, but the reference model is the (aligned) teacher instead of the
student's own initialisation, so the implicit reward measures the student against the
teacher:

L = −log σ(β · [(log πθ(y_w|x) − log π_T(y_w|x)) − (log πθ(y_l|x) − log π_T(y_l|x))])

β = 0.1 (TRL's DPO default; the paper trains with the standard DPO objective).
"""

from __future__ import annotations

from dataclasses import dataclass

from distillbench.methods.base import register_method
from distillbench.methods.llm.dpo import DPO


@register_method("teacher-ref-dpo", family="llm", paper="Shu et al. 2025, arXiv:2408.15881",
                 summary="DPO with the teacher as the reference model (LLaVA-MoD preference distillation)")
@dataclass
class TeacherRefDPO(DPO):
    """DPO whose reference log-probs come from the teacher."""

    reference_model = "teacher"
