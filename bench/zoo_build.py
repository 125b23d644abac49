"""Zoo build time on this machine, per entry, from a fresh build into a temporary cache.

    .venv/bin/python bench/zoo_build.py            # rebuild the full zoo from scratch (about 15 minutes on 2 cores)
    .venv/bin/python bench/zoo_build.py --cached   # only read the manifests of the zoo in the user cache

Writes bench/results/zoo_build.json: seconds per entry (as each manifest recorded it), the
total, the 15-minute target, and a description of the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from distillbench.core.provenance import machine, package_versions

TARGET_SECONDS = 15 * 60
RESULTS = Path(__file__).parent / "results" / "zoo_build.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cached", action="store_true", help="read the existing cache instead of rebuilding")
    args = parser.parse_args()
    if not args.cached:
        os.environ["DISTILLBENCH_CACHE"] = tempfile.mkdtemp(prefix="distillbench-zoo-bench-")
    from distillbench.pocket import zoo

    started = time.perf_counter()
    seconds = {}
    for name in zoo.specs():  # in dependency order: each entry's parents are built by the time it is
        # `build` trains; `ensure_built` would install the copy shipped in the package instead.
        directory = zoo.ensure_built(name) if args.cached else zoo.build(name)
        seconds[name] = json.loads((directory / zoo.MANIFEST).read_text())["build_seconds"]
    total = sum(seconds.values())
    result = {"benchmark": "zoo_build", "rebuilt": not args.cached, "seconds": seconds, "total_seconds": round(total, 1),
              "wall_seconds": round(time.perf_counter() - started, 1), "target_seconds": TARGET_SECONDS,
              "meets_target": total <= TARGET_SECONDS, "machine": machine(), "packages": package_versions()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    for name, value in seconds.items():
        print(f"{name:18s} {value:8.1f} s")
    print(f"{'total':18s} {total:8.1f} s   (target {TARGET_SECONDS} s: {'met' if total <= TARGET_SECONDS else 'missed'})")


if __name__ == "__main__":
    main()
