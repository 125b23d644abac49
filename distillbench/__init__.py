"""distillbench: distillation and preference-alignment methods as adapters, scored on a benchmark registry."""

__version__ = "0.1.0"
