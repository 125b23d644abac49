"""Pocket worlds: small synthetic worlds with computable ground truth, real formats, real models."""
