"""Classifier and representation distillation methods (image batches, data kind "images")."""
