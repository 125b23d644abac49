"""The self-contained HTML leaderboard: escaping, no network resources, bounded drill-down, and a
headless Chromium check that the table renders and that a script inside a model output never runs."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from distillbench.cli.main import main
from distillbench.core.store import Store
from distillbench.leaderboards.html import ITEMS_PER_ROW, render_html, write_html

# What a hostile model output could try; the probe adds an element and retitles the page if it ever runs.
PROBE = "var e=document.createElement('div');e.id='xss-ran';document.body.appendChild(e);document.title='pwned'"
HOSTILE = [f"<script>{PROBE}</script>", f"</script><script>{PROBE}</script>", "<img src=x onerror=\"alert(1)\">",
           f'"><svg onload="{PROBE}">']
BENCH_KEY, ITEMS = "k-pocket-math", 25


def _pocket_math_ids(n: int) -> list[str]:
    from distillbench.pocket.benchmarks.pocket_math import PocketMath

    return [item["id"] for item in PocketMath(n=n).items()]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run directory with a leaderboard.json and a results store whose outputs are hostile."""
    import json

    directory = tmp_path_factory.mktemp("html-run")
    ids = _pocket_math_ids(ITEMS)
    store = Store(directory / "results.sqlite")
    rows = []
    for index, (label, kind, cost) in enumerate([("teacher", "reference", {"eval_seconds": 1.0}),
                                                 ("sft", "method", {"train_seconds": 10.0, "teacher_forwards": 0}),
                                                 ("kd<b>bold</b>", "method", {"train_seconds": 30.0,
                                                                               "teacher_forwards": 900})]):
        cell = f"cell{index}"
        store.mark_cell(cell, run_id="r", label=label, kind=kind, method=None if kind == "reference" else label,
                        params={}, seed=0, status="complete")
        items = [{"id": item_id, "scores": {"accuracy": float((i + index) % 2)}, "reason": f"reason <i>{i}</i>",
                  "output": HOSTILE[i % len(HOSTILE)]} for i, item_id in enumerate(ids)]
        mean = sum(item["scores"]["accuracy"] for item in items) / len(items)
        metric = {"mean": mean, "ci95": [mean - 0.1, mean + 0.1], "n": len(items)}
        store.save_evaluation(cell, BENCH_KEY, "pocket-math", {}, 1.0, items, {"accuracy": metric})
        rows.append({"row": label, "kind": kind, "method": None if kind == "reference" else "kd" if index == 2 else label,
                     "model": "pocket:student-init", "seeds": [] if kind == "reference" else [0],
                     "metrics": {"pocket-math/accuracy": metric}, "seed_spread": {}, "cost": cost, "cells": [cell],
                     "status": "complete"})
    store.close()
    board = {"schema_version": 1, "recipe": {"name": "html <test>", "benchmarks": [
                 {"name": "pocket-math", "params": {"n": ITEMS}}]},
             "protocols": {"pocket-math": {"scorer_version": "1", "key": BENCH_KEY, "binary_metrics": ["accuracy"]}},
             "rows": rows}
    (directory / "leaderboard.json").write_text(json.dumps(board))
    return directory


@pytest.fixture(scope="module")
def page(run_dir) -> str:
    assert main(["leaderboard", str(run_dir), "--format", "html", "--reported"]) == 0
    return (run_dir / "leaderboard.html").read_text()


def test_hostile_outputs_appear_only_escaped(page):
    for output in HOSTILE:
        assert output not in page
    assert "&lt;script&gt;var e=document.createElement(&#x27;div&#x27;)" in page
    assert "&lt;/script&gt;&lt;script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    # The page's own script is the only one; row labels and reasons are escaped too.
    assert page.count("<script") == 1 and page.count("</script>") == 1
    assert "<b>bold</b>" not in page and "kd&lt;b&gt;bold&lt;/b&gt;" in page
    assert "reason &lt;i&gt;0&lt;/i&gt;" in page and "html &lt;test&gt;" in page


def test_render_escapes_without_a_store():
    board = {"recipe": {"name": "x"}, "protocols": {}, "rows": [
        {"row": "</script><script>alert(1)</script>", "kind": "method", "method": "m", "model": "m", "seeds": [0],
         "metrics": {}, "cost": {}, "cells": [], "status": "complete"}]}
    text = render_html(board)
    assert "alert(1)</script>" not in text and "&lt;/script&gt;&lt;script&gt;alert(1)" in text


def test_the_page_loads_nothing_from_the_network(page):
    tags = re.findall(r"<([a-zA-Z]+)([^>]*)>", page)
    assert not [tag for tag in tags if re.search(r"\b(src|srcset|data)\s*=", tag[1])], "an element loads a resource"
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "Content-Security-Policy" in page and "default-src &#x27;none&#x27;" in page


def test_table_plots_and_a_bounded_drilldown(page):
    assert page.count('<tbody class="entry">') == 3
    assert page.count('<svg class="plot"') == 2  # one benchmark, against train seconds and teacher forwards
    assert page.count('<details class="item">') == 3 * ITEMS_PER_ROW
    assert f"the first {ITEMS_PER_ROW} of {ITEMS} items" in page
    assert "prompt</span>" in page and "gold answer</span>" in page  # rebuilt from the recipe's pocket-math options


def test_write_html_without_a_store_still_writes_a_page(run_dir, tmp_path):
    import json

    board = json.loads((run_dir / "leaderboard.json").read_text())
    path = write_html(tmp_path, board)
    assert path == tmp_path / "leaderboard.html" and "no per-item records" in path.read_text()


# ---------------------------------------------------------------- headless Chromium
def _install_chromium() -> str | None:
    """Debian's chromium, installed with apt-get (as root, or with sudo -n) when missing."""
    apt = shutil.which("apt-get")
    if apt is None or os.environ.get("DISTILLBENCH_NO_BROWSER_INSTALL"):
        return None
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"] if shutil.which("sudo") else None
    if prefix is None:
        return None
    install = prefix + [apt, "install", "-y", "--no-install-recommends", "chromium"]
    for commands in ([install], [prefix + [apt, "update"], install]):  # stale package lists: update once
        try:
            for command in commands:
                subprocess.run(command, check=True, capture_output=True, timeout=600,
                               env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        except (subprocess.SubprocessError, OSError):
            continue
        return shutil.which("chromium")
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    found = next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)
    found = found or _install_chromium()
    if found is None:
        pytest.skip("chromium is not installed and could not be installed (apt-get install chromium needs root or "
                    "passwordless sudo and a reachable package mirror; DISTILLBENCH_NO_BROWSER_INSTALL turns it off)")
    return found


def _dom(chromium: str, url: str) -> str:
    result = subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox", "--dump-dom", url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_probe_detects_a_script_that_runs(chromium, tmp_path):
    """Control: the same payload, unescaped, does run in this browser, so its absence below means something."""
    control = tmp_path / "control.html"
    control.write_text(f"<html><head><title>control</title></head><body>{HOSTILE[0]}</body></html>")
    dom = _dom(chromium, control.as_uri())
    assert 'id="xss-ran"' in dom and "<title>pwned</title>" in dom


def test_chromium_renders_the_table_and_runs_no_injected_script(chromium, page, run_dir):
    dom = _dom(chromium, (run_dir / "leaderboard.html").as_uri())
    table = re.search(r'<table id="leaderboard"[^>]*>', dom).group(0)
    assert 'data-ready="true"' in table and 'data-sort-column="0"' in table  # the page's script ran
    assert dom.count('<tbody class="entry">') == 3 and 'aria-sort="ascending"' in dom
    assert 'id="xss-ran"' not in dom and "<title>pwned</title>" not in dom
    assert "<title>distillbench leaderboard: html &lt;test&gt;</title>" in dom


def test_chromium_sorts_by_a_metric_column(chromium, page, run_dir):
    """#sort=4-desc: the accuracy column (after #, row, kind, seeds), largest first."""
    dom = _dom(chromium, (run_dir / "leaderboard.html").as_uri() + "#sort=4-desc")
    values = [float(v) for v in re.findall(r'<td class="metric" data-sort="([^"]+)"', dom)]
    assert len(values) >= 3 and values[:3] == sorted(values[:3], reverse=True)
    assert 'data-sort-column="4"' in dom
