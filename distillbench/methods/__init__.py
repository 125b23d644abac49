"""Methods, one file per method, grouped by family. Importing this package registers them."""

from . import llm  # noqa: F401
