"""The pocket benchmarks: each reads a pocket world for its items (and the pocket oracle, a judge, for its
ground truth) and scores them the way its real benchmark does, with the real benchmark's code.

They live with the pocket worlds, above the benchmarks they instantiate, so that `distillbench.benchmarks`
never imports a pocket world; `distillbench.plugins` lists them as any benchmark.
"""
