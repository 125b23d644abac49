"""Methods, one file per method, grouped by family. Importing this package registers them."""

from . import classify, llm  # noqa: F401
