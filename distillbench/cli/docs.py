"""The tables of methods and benchmarks in docs/, generated from the registry.

`python -m distillbench.cli.docs` rewrites them in docs/methods.md and
docs/benchmarks.md; a test fails when the committed pages and the registry
drift apart.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from distillbench.core.registry import BENCHMARKS, METHODS, Registry

TABLES = {"methods": METHODS, "benchmarks": BENCHMARKS}
# The page (relative to the repository root) that holds each table.
PAGES = {"methods": Path("docs/methods.md"), "benchmarks": Path("docs/benchmarks.md")}
# Families registered only by tests stay out of the docs.
HIDDEN_FAMILIES = {"test"}


def registry_table(registry: Registry) -> str:
    lines = ["| name | family | paper | summary |", "|---|---|---|---|"]
    for entry in registry.entries():
        if entry.family not in HIDDEN_FAMILIES:
            also = "".join(f" (also `{alias}`)" for alias in entry.aliases)
            lines.append(f"| `{entry.name}`{also} | {entry.family} | {entry.paper} | {entry.summary} |")
    return "\n".join(lines)


def _markers(kind: str) -> tuple[str, str]:
    return f"<!-- registry:{kind}:start -->", f"<!-- registry:{kind}:end -->"


def render_table(kind: str, text: str) -> str:
    """`text` with its `kind` table (methods or benchmarks) regenerated between the markers."""
    start, end = _markers(kind)
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{PAGES[kind]} has no {start} … {end} block")
    return pattern.sub(lambda _: f"{start}\n{registry_table(TABLES[kind])}\n{end}", text)


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for kind, page in PAGES.items():
        path = root / page
        path.write_text(render_table(kind, path.read_text()))
        print(f"updated the {kind} table in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
