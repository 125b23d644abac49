"""The README's tables of methods and benchmarks, generated from the registry.

`python -m distillbench.cli.docs` rewrites them in README.md; a test fails
when the committed README and the registry drift apart.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from distillbench.core.registry import BENCHMARKS, METHODS, Registry

TABLES = {"methods": METHODS, "benchmarks": BENCHMARKS}
# Families registered only by tests stay out of the README.
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


def render_readme(text: str) -> str:
    for kind, registry in TABLES.items():
        start, end = _markers(kind)
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            raise ValueError(f"README has no {start} … {end} block")
        text = pattern.sub(lambda _: f"{start}\n{registry_table(registry)}\n{end}", text)
    return text


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(render_readme(path.read_text()))
    print(f"updated the registry tables in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
