"""Benchmarks, one file per benchmark or scorer family.

Importing a benchmark's module registers it, as the judge backends register from
`distillbench.benchmarks.judges`; `distillbench.plugins` lists which module registers which
name, so a lookup imports only the benchmark asked for.
"""
