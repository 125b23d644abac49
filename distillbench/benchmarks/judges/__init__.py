"""Judge backends: each takes the rendered official judge prompt and returns the judge's text.

A backend has one method, ``complete(system, user) -> str`` (a chat completion);
the official parsing rules (`distillbench.benchmarks.mtbench_judging`) read the
verdict out of what it returns. Importing this package registers the backends.
"""

from . import oracle  # noqa: F401
