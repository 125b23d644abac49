"""Methods, one file per method, grouped by family. Importing this package registers them."""

from distillbench.methods import classify, llm  # noqa: F401
