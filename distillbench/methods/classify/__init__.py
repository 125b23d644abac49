"""Classifier and representation distillation methods (image batches, data kind "images")."""

from distillbench.methods.classify import ce, cprd, cv_dd, dhkd, dho, diswot, dkd, hinton_kd, info_nce, pld  # noqa: F401
from distillbench.methods.classify import distill_nearest, distill_weighted, distiller_mi, lelp, self_distill_gt  # noqa: F401
from distillbench.methods.classify import dmjd, fair_latent, hybrid_distill  # noqa: F401
