"""Benchmarks, one file per benchmark or scorer family. Importing this package registers them."""

from . import judges, mtbench, pocket_math  # noqa: F401
