"""Benchmarks, one file per benchmark or scorer family. Importing this package registers them.

Judge backends register from `distillbench.benchmarks.judges`, which the registry imports
on first use (not from here: the pocket oracle depends on scorers of this package).
"""

from . import gsm8k, hendrycks_math, mtbench, pocket_math  # noqa: F401
