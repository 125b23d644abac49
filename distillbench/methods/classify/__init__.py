"""Classifier and representation distillation methods (image batches, data kind "images")."""

from . import ce, dhkd, dho, dkd, hinton_kd, pld  # noqa: F401
