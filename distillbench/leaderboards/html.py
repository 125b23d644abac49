"""One self-contained HTML page per leaderboard: leaderboard.html in the run directory.

The page loads nothing from the network (inline CSS, inline JS, inline SVG) and is
rendered server-side: every number, prompt and model output is written into the HTML
through `html.escape`, and no data is embedded in the script, so a model output holding
`</script>` or `<script>` is text on the page and nothing else. A Content-Security-Policy
allows only the page's own script (by its hash), as a second line of defence.

It holds: the table (click a header to sort; each metric cell with its 95% CI drawn as a
bar on a scale shared by its column), one plot per benchmark of its first metric against
each cost column (training seconds, teacher forward passes), reference rows as horizontal
lines, and, per row, the first items of each benchmark with prompt, gold answer, output,
scores and the scorer's reason (an audit down to one item, as GenEval's per-image records).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from html import escape
from pathlib import Path
from typing import Any

from distillbench.core.files import write_text_atomic
from distillbench.core.recipe import validate_options
from distillbench.core.registry import BENCHMARKS
from distillbench.core.store import Store
from distillbench.leaderboards.aggregate import direction, ideal
from distillbench.leaderboards.render import format_metric, format_p, metric_names
from distillbench.leaderboards.reported import SECTION_HEADER, reported_cells

ITEMS_PER_ROW = 20
COST_AXES = (("train_seconds", "training wall time (s)"), ("teacher_forwards", "teacher forward passes"))
COST_COLUMNS = (("train_seconds", "train s"), ("teacher_forwards", "teacher fwd"), ("eval_seconds", "eval s"),
                ("peak_memory_mb", "peak MB"))


def esc(value: Any) -> str:
    return escape(str(value), quote=True)


# ---------------------------------------------------------------- per-item records
def _board_name(spec: dict[str, Any], specs: list[dict[str, Any]]) -> str:
    """The name a recipe's benchmark has on the leaderboard (its label when listed with several option sets)."""
    if [s["name"] for s in specs].count(spec["name"]) == 1 or not spec.get("params"):
        return spec["name"]
    inner = ",".join(f"{k}={v}" for k, v in sorted(spec["params"].items()))
    return f"{spec['name']}[{inner}]"


def _rebuilt_here(spec: dict[str, Any]) -> bool:
    """Pocket worlds are generated here and a local `source` file is read here; anything else (a hub
    dataset, an lm-eval task) may download or index for long, which rendering a page must not do."""
    source = spec.get("params", {}).get("source")
    return spec["name"].startswith("pocket-") or (isinstance(source, str) and Path(source).is_file())


def benchmark_items(board: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """benchmark name -> item id -> item, rebuilt from the recipe's benchmark options where that is local
    and cheap; the page shows the other benchmarks' outputs without their prompts."""
    specs = board.get("recipe", {}).get("benchmarks", [])
    items = {}
    for spec in specs:
        name = _board_name(spec, specs)
        if name not in board.get("protocols", {}) or spec["name"] not in BENCHMARKS or not _rebuilt_here(spec):
            continue
        try:
            benchmark, _ = validate_options(BENCHMARKS.get(spec["name"]), spec.get("params", {}), name)
            if benchmark is not None:
                items[name] = {item["id"]: item for item in benchmark.items()}
        except Exception:  # prompts are a convenience: unreadable data must not stop the page
            continue
    return items


def item_samples(run_dir: Path, board: dict[str, Any], limit: int = ITEMS_PER_ROW) -> dict[str, dict[str, Any]]:
    """row -> benchmark -> {"seed", "total", "items"}: the first `limit` scored items of the row's first
    cell, each with its prompt and gold answer where the benchmark's data can be rebuilt."""
    path = Path(run_dir) / "results.sqlite"
    if not path.is_file():
        return {}
    items = benchmark_items(board)
    samples: dict[str, dict[str, Any]] = {}
    store = Store(path)
    try:
        for row in board["rows"]:
            if not row.get("cells"):
                continue
            cell = row["cells"][0]
            for bench, protocol in board.get("protocols", {}).items():
                records = store.item_records(cell, protocol["key"], limit)
                if not records:
                    continue
                total = len(store.item_scores(cell, protocol["key"]))
                for record in records:
                    item = items.get(bench, {}).get(record["id"], {})
                    record["prompt"], record["gold"] = _prompt(item), _gold(item)
                seed = row["seeds"][0] if row.get("seeds") else None
                samples.setdefault(row["row"], {})[bench] = {"seed": seed, "total": total, "items": records}
    finally:
        store.close()
    return samples


def _prompt(item: dict[str, Any]) -> list[str]:
    """The text the model was asked, as a list of turns."""
    for field in ("turns", "problem", "question", "prompt", "caption"):
        value = item.get(field)
        if isinstance(value, list):
            return [m["content"] if isinstance(m, dict) else str(m) for m in value]
        if value:
            return [str(value)]
    return []


def _gold(item: dict[str, Any]) -> tuple[str, str] | None:
    """(label, text) of what the scorer compares with: the gold answer, or the judge's reference answers."""
    for field, label in (("answer", "gold answer"), ("reference", "reference answer")):
        value = item.get(field)
        if isinstance(value, list):
            return label, "\n".join(f"turn {i + 1}: {v}" for i, v in enumerate(value))
        if value is not None:
            return label, str(value)
    return None


def _turns(output: Any) -> list[str]:
    """A stored output: a string, or a JSON list of one answer per turn."""
    if isinstance(output, str) and output.startswith("["):
        try:
            parsed = json.loads(output)
        except json.JSONDecodeError:
            return [output]
        if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed):
            return parsed
    return [str(output)]


# ---------------------------------------------------------------- pieces of the page
def _scale(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    pad = (high - low) * 0.05 or abs(high) * 0.05 or 1.0
    return low - pad, high + pad


def _ci_bar(metric: dict[str, Any], scale: tuple[float, float], width: int = 140) -> str:
    low, high = scale

    def x(value: float) -> float:
        return round(4 + (value - low) / (high - low) * (width - 8), 1)

    mean = metric["mean"]
    if not math.isfinite(mean):
        return ""
    if metric.get("ci95") is None:  # a reported number: a diamond, no interval
        cx = x(mean)
        return (f'<svg class="bar" width="{width}" height="12" role="img" aria-label="reported value">'
                f'<path d="M{cx} 1 L{cx + 5} 6 L{cx} 11 L{cx - 5} 6 Z" class="reported-mark"/></svg>')
    ci_low, ci_high = metric["ci95"]
    return (f'<svg class="bar" width="{width}" height="12" role="img" aria-label="95% CI">'
            f'<line x1="4" y1="6" x2="{width - 4}" y2="6" class="axis"/>'
            f'<rect x="{x(ci_low)}" y="2" width="{max(1.0, x(ci_high) - x(ci_low))}" height="8" class="ci"/>'
            f'<line x1="{x(mean)}" y1="0" x2="{x(mean)}" y2="12" class="mean"/></svg>')


def _sort_key(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def _number(value: Any, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _table(board: dict[str, Any]) -> str:
    names = metric_names(board)
    scales = {n: _scale([v for row in board["rows"] if n in row["metrics"]
                         for v in [row["metrics"][n]["mean"], *(row["metrics"][n].get("ci95") or [])]])
              for n in names}
    head = ['<th data-type="number" title="order in the recipe">#</th>', '<th data-type="text">row</th>',
            '<th data-type="text">kind</th>', '<th data-type="text">seeds</th>']
    head += [f'<th data-type="number">{esc(n)}<br><span class="sub">mean [95% CI]</span></th>' for n in names]
    head += [f'<th data-type="number">{esc(label)}</th>' for _, label in COST_COLUMNS]
    head.append('<th data-type="text">status</th>')
    groups, index = [], 0
    for row in board["rows"]:
        if row["kind"] == "reported" and groups:  # beside the row it reproduces, moved with it when sorted
            groups[-1].append(_table_row(row, names, scales, None))
            continue
        groups.append([_table_row(row, names, scales, index)])
        index += 1
    body = "\n".join(f'<tbody class="entry">{"".join(group)}</tbody>' for group in groups)
    return (f'<table id="leaderboard" class="leaderboard"><thead><tr>{"".join(head)}</tr></thead>\n'
            f"{body}</table>")


def _td(sort: str, content: str, css: str = "") -> str:
    """A table cell: `sort` is the text the script sorts by, `content` is HTML already escaped."""
    css_attribute = f' class="{css}"' if css else ""
    return f'<td{css_attribute} data-sort="{esc(sort)}">{content}</td>'


def _table_row(row: dict[str, Any], names: list[str], scales: dict, index: int | None) -> str:
    reported = row["kind"] == "reported"
    info = row.get("reported", {})
    label = esc(row["row"])
    if row["kind"] == "reference":
        label += f' <span class="sub">({esc(row["model"])})</span>'
    if not reported:
        label += f' <a class="sub" href="#items-{index}">items</a>'
    seeds = ",".join(map(str, row["seeds"]))
    cells = [_td("" if index is None else str(index), "" if index is None else str(index + 1)),
             _td(row["row"], label), _td(row["kind"], esc(row["kind"])), _td(seeds, esc(seeds or "—"))]
    for name in names:
        metric = row["metrics"].get(name)
        if metric is None:
            cells.append(_td("", "—"))
            continue
        text = esc(format_metric(metric, with_n=False))
        if reported and info.get("delta") is not None:
            text += f' <span class="delta">Δ reproduced − reported {info["delta"]:+.3f}</span>'
        elif not reported:
            text += f' <span class="sub">n={metric["n"]}</span>'
        cells.append(_td(_sort_key(metric["mean"]), f"{text}<br>{_ci_bar(metric, scales[name])}", "metric"))
    for field, _ in COST_COLUMNS:
        value = row["cost"].get(field)
        cells.append(_td(_sort_key(value), _number(value, 1 if field == "eval_seconds" else 0)))
    if reported:
        status = ("verified" if info.get("verified") else "unchecked") + f" · {info.get('source', '')}"
    else:
        status = row["status"]
    cells.append(_td(status, esc(status)))
    return f'<tr class="{esc(row["kind"])}">{"".join(cells)}</tr>'


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = high - low
    step = 10 ** math.floor(math.log10(span / count)) if span > 0 else 1.0
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _tick_label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _plot(board: dict[str, Any], metric: str, cost: str, cost_label: str, reading: str) -> str | None:
    """The metric against one cost column: method rows as points with CI whiskers, references as lines."""
    points = [(row["row"], row["cost"][cost], row["metrics"][metric]) for row in board["rows"]
              if row["kind"] == "method" and cost in row["cost"] and metric in row["metrics"]]
    if not points:
        return None
    references = [(row["row"], row["metrics"][metric]["mean"]) for row in board["rows"]
                  if row["kind"] == "reference" and metric in row["metrics"]]
    width, height, left, right, top, bottom = 480, 280, 56, 120, 16, 40
    ys = [v for _, _, m in points for v in [m["mean"], *(m.get("ci95") or [])]] + [v for _, v in references]
    y_low, y_high = _scale(ys)
    x_low, x_high = _scale([0.0] + [x for _, x, _ in points])

    def px(x: float) -> float:
        return round(left + (x - x_low) / (x_high - x_low) * (width - left - right), 1)

    def py(y: float) -> float:
        return round(height - bottom - (y - y_low) / (y_high - y_low) * (height - top - bottom), 1)

    plot_width, plot_height = width - left - right, height - top - bottom
    parts = [f'<svg class="plot" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(metric)} against {esc(cost_label)}">',
             f'<rect x="{left}" y="{top}" width="{plot_width}" height="{plot_height}" class="frame"/>']
    for tick in _ticks(y_low, y_high):
        parts += [_line(left - 4, py(tick), left, py(tick), "tick"),
                  _text(left - 6, py(tick) + 4, _tick_label(tick), anchor="end")]
    for tick in _ticks(x_low, x_high):
        parts += [_line(px(tick), height - bottom, px(tick), height - bottom + 4, "tick"),
                  _text(px(tick), height - bottom + 16, _tick_label(tick), anchor="middle")]
    label_y = -math.inf
    for name, value in sorted(references, key=lambda reference: -reference[1]):  # top to bottom
        label_y = max(py(value) + 4, label_y + 12)  # labels of close lines stacked, not overprinted
        parts += [_line(left, py(value), width - right, py(value), "reference"),
                  _text(width - right + 4, label_y, name, css="label")]
    for name, x, m in points:
        if m.get("ci95"):
            parts.append(_line(px(x), py(m["ci95"][0]), px(x), py(m["ci95"][1]), "whisker"))
        parts += [f'<circle cx="{px(x)}" cy="{py(m["mean"])}" r="4" class="point">'
                  f"<title>{esc(name)}: {esc(format_metric(m))} at {x:,.0f}</title></circle>",
                  _text(px(x) + 6, py(m["mean"]) - 6, name, css="label")]
    middle = top + plot_height / 2
    parts += [_text(left + plot_width / 2, height - 6, cost_label, anchor="middle"),
              f'<text x="12" y="{middle}" text-anchor="middle" transform="rotate(-90 12 {middle})">'
              f"{esc(metric + reading)}</text></svg>"]
    return "".join(parts)


def _line(x1: float, y1: float, x2: float, y2: float, css: str) -> str:
    return f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" class="{css}"/>'


def _text(x: float, y: float, text: str, anchor: str = "start", css: str = "") -> str:
    css_attribute = f' class="{css}"' if css else ""
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}"{css_attribute}>{esc(text)}</text>'


def _reading(board: dict[str, Any], metric: str) -> str:
    """The axis label's note on which way is better: none for higher (the default)."""
    kind = direction(board, metric)
    if kind == "lower":
        return " (lower is better)"
    if kind == "higher":
        return ""
    target = ideal(board, metric)
    return " (no better direction)" if target is None else f" (best near {target:.4g})"


def _plots(board: dict[str, Any]) -> str:
    names = metric_names(board)
    sections = []
    for bench, protocol in board.get("protocols", {}).items():
        metric = next((n for n in names if n.startswith(f"{bench}/")), None)
        if metric is None:
            continue
        reading = _reading(board, metric)
        plots = [p for cost, label in COST_AXES if (p := _plot(board, metric, cost, label, reading))]
        body = "".join(plots) or '<p class="sub">no method row has a training cost yet</p>'
        sections.append(f'<figure><figcaption>{esc(bench)}: {esc(metric)} (mean, 95% CI) against cost; '
                        f'dashed lines are reference models</figcaption>{body}</figure>')
    return "\n".join(sections)


def _pre(label: str, text: str | None) -> str:
    if text is None:
        return ""
    return f'<div class="field"><span class="sub">{esc(label)}</span><pre>{esc(text)}</pre></div>'


def _item(record: dict[str, Any]) -> str:
    scores = ", ".join(f"{name}={value:g}" if isinstance(value, (int, float)) else f"{name}={value}"
                       for name, value in record["scores"].items())
    prompts, answers = record.get("prompt") or [], _turns(record["output"])
    if len(prompts) == len(answers) > 1:  # a multi-turn conversation: question, answer, question, answer
        exchange = "".join(_pre(f"prompt, turn {i + 1}", p) + _pre(f"output, turn {i + 1}", a)
                           for i, (p, a) in enumerate(zip(prompts, answers)))
    else:
        exchange = "".join(_pre("prompt" + (f", turn {i + 1}" if len(prompts) > 1 else ""), p)
                           for i, p in enumerate(prompts))
        exchange += "".join(_pre("output" + (f", turn {i + 1}" if len(answers) > 1 else ""), a)
                            for i, a in enumerate(answers))
    if not prompts:
        exchange = ('<p class="sub">prompt not shown (rebuilt only for pocket worlds and local data files)</p>'
                    + exchange)
    return (f'<details class="item"><summary><code>{esc(record["id"])}</code> {esc(scores)}</summary>'
            f'{exchange}{_pre(*record["gold"]) if record.get("gold") else ""}'
            f'{_pre("scorer reason", record.get("reason") or None)}'
            f"</details>")


def _drilldown(board: dict[str, Any], samples: dict[str, dict[str, Any]]) -> str:
    sections, index = [], 0
    for row in board["rows"]:
        if row["kind"] == "reported":
            continue
        benches = samples.get(row["row"], {})
        inner = []
        for bench, sample in benches.items():
            seed = "" if sample["seed"] is None else f", seed {sample['seed']}"
            inner.append(f'<details class="bench"><summary>{esc(bench)}: the first {len(sample["items"])} of '
                         f'{sample["total"]} items{esc(seed)}</summary>'
                         + "".join(_item(record) for record in sample["items"]) + "</details>")
        body = "".join(inner) or '<p class="sub">no per-item records (no results.sqlite beside the leaderboard)</p>'
        sections.append(f'<details class="row" id="items-{index}"><summary>{esc(row["row"])}</summary>{body}</details>')
        index += 1
    return "\n".join(sections)


def _versus(comparisons: list[dict[str, Any]], versus: str) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in ("row", "metric", f"Δ vs {versus}", "95% CI", "p", "p (Holm)",
                                                    "test", "n", "significant"))
    rows = "".join(f'<tr><td>{esc(c["row"])}</td><td>{esc(c["metric"])}</td><td>{c["diff"]:+.3f}</td>'
                   f'<td>[{c["ci95"][0]:+.3f}, {c["ci95"][1]:+.3f}]</td><td>{esc(format_p(c))}</td>'
                   f'<td>{"≤ " if c.get("p_holm_is_bound") else ""}{c["p_holm"]:.3g}</td>'
                   f'<td>{esc(c["test"])}</td><td>{c["n"]}</td><td>{"yes" if c["significant"] else ""}</td></tr>'
                   for c in comparisons)
    return (f"<h2>Head to head against {esc(versus)}</h2><p>Paired over the items both rows scored, and over seeds "
            f"where a row has several; significant at 0.05 after Holm correction; &lt; x: a resampling test's floor "
            f"1/(R+1), a bound.</p><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _reported_section(entries: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in SECTION_HEADER)
    rows = []
    for entry in entries:
        cells = [esc(c) for c in reported_cells(entry)]
        if entry["arxiv"]:
            cells[1] = f'<a href="https://arxiv.org/abs/{esc(entry["arxiv"])}">{esc(entry["arxiv"])}</a>'
        rows.append(f'<tr class="{"verified" if entry["verified"] else "unchecked"}">'
                    + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<h2>Reported by the papers</h2><p>Numbers the seed papers report in settings this leaderboard did not "
            "reproduce, on distillbench's scale; unchecked ones come from secondary sources.</p>"
            f'<table class="reported-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
#leaderboard th { cursor: pointer; user-select: none; background: #f4f4f4; position: sticky; top: 0; }
#leaderboard th[aria-sort="ascending"]::after { content: " ▲"; }
#leaderboard th[aria-sort="descending"]::after { content: " ▼"; }
tr.reference td { background: #f7f9fc; }
tr.reported td { background: #fffaf0; font-style: italic; }
.sub { color: #666; font-size: 85%; }
.delta { color: #8a4b00; font-size: 85%; }
svg.bar .axis { stroke: #ccc; } svg.bar .ci { fill: #9ec5e8; } svg.bar .mean { stroke: #114477; stroke-width: 2; }
svg.bar .reported-mark { fill: #d08a1c; }
svg.plot { margin-right: 1em; font-size: 11px; } svg.plot .frame { fill: none; stroke: #bbb; }
svg.plot .tick { stroke: #888; } svg.plot .whisker { stroke: #114477; } svg.plot .point { fill: #114477; }
svg.plot .reference { stroke: #999; stroke-dasharray: 4 3; } svg.plot .label { fill: #333; }
figure { margin: 0 0 1.5em; } figcaption { font-weight: 600; margin-bottom: 0.3em; }
details { margin: 0.2em 0 0.2em 1em; } summary { cursor: pointer; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 4px 6px; margin: 2px 0 6px; max-width: 70em; }
"""

# Sorts the table's row groups (a row with its reported numbers) by the clicked column; missing values
# last. On load it sorts by the recipe order, or by `#sort=<column>[-desc]` in the address, and marks
# the table, which the headless browser test reads.
SCRIPT = r"""
(function () {
  var table = document.getElementById("leaderboard");
  var headers = table.tHead.rows[0].cells;
  function sortBy(column, ascending) {
    var numeric = headers[column].getAttribute("data-type") === "number";
    var groups = Array.prototype.slice.call(table.tBodies);
    groups.sort(function (a, b) {
      var x = a.rows[0].cells[column].getAttribute("data-sort");
      var y = b.rows[0].cells[column].getAttribute("data-sort");
      if (x === "" || y === "") { return (x === "") - (y === ""); }
      var order = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return ascending ? order : -order;
    });
    groups.forEach(function (group) { table.appendChild(group); });
    for (var i = 0; i < headers.length; i++) { headers[i].removeAttribute("aria-sort"); }
    headers[column].setAttribute("aria-sort", ascending ? "ascending" : "descending");
    table.setAttribute("data-sort-column", String(column));
  }
  for (var i = 0; i < headers.length; i++) {
    headers[i].addEventListener("click", (function (column) {
      return function () {
        var again = table.getAttribute("data-sort-column") === String(column);
        sortBy(column, !(again && headers[column].getAttribute("aria-sort") === "ascending"));
      };
    })(i));
  }
  var requested = /^#sort=(\d+)(-desc)?$/.exec(window.location.hash);  // a link can carry its sort order
  if (requested && Number(requested[1]) < headers.length) {
    sortBy(Number(requested[1]), !requested[2]);
  } else {
    sortBy(0, true);
  }
  table.setAttribute("data-ready", "true");
})();
"""


def render_html(board: dict[str, Any], samples: dict[str, dict[str, Any]] | None = None,
                comparisons: list[dict[str, Any]] | None = None, versus: str | None = None) -> str:
    name = board["recipe"]["name"]
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    protocols = "".join(f"<li><code>{esc(bench)}</code>: " + esc(", ".join(f"{k}={v}" for k, v in p.items())) + "</li>"
                        for bench, p in board.get("protocols", {}).items())
    errors = "".join(f"<li><code>{esc(row['row'])}</code> failed: {esc(error)}</li>"
                     for row in board["rows"] for error in row.get("errors", []))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{esc(policy)}">',
        f"<title>distillbench leaderboard: {esc(name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Leaderboard: {esc(name)}</h1>",
        "<p>Mean over items (and seeds) with a 95% CI (bars share a scale per column): over seeds and items for a "
        "row with several seeds, a percentile bootstrap over items for one. Click a column header to sort.</p>",
        _table(board), f"<ul>{protocols}{errors}</ul>",
    ]
    if comparisons is not None and versus is not None:
        parts.append(_versus(comparisons, versus))
    if board.get("reported_elsewhere"):
        parts.append(_reported_section(board["reported_elsewhere"]))
    parts += ["<h2>Metric against cost</h2>", _plots(board),
              f"<h2>Per-item records</h2><p>The first {ITEMS_PER_ROW} items each row scored on each benchmark "
              "(a row with several seeds shows its first seed), with the prompt, the output and the scorer's "
              "reason.</p>", _drilldown(board, samples or {}),
              f"<script>{SCRIPT}</script></body></html>"]
    return "\n".join(parts) + "\n"


def write_html(run_dir: Path, board: dict[str, Any], comparisons: list[dict[str, Any]] | None = None,
               versus: str | None = None, name: str = "leaderboard.html") -> Path:
    """Write the page as `name` in `run_dir` (a committed board's page beside it, under the board's name)."""
    path = Path(run_dir) / name
    write_text_atomic(path, render_html(board, item_samples(run_dir, board), comparisons, versus))
    return path
