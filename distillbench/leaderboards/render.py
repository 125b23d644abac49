"""Renderers: terminal (rich), Markdown, CSV and JSON (the HTML page is html.py)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from distillbench.core.files import write_text_atomic
from distillbench.leaderboards.reported import SECTION_HEADER, reported_cells, reported_markdown


def metric_names(board: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(name for row in board["rows"] for name in row["metrics"]))


def format_metric(metric: dict[str, Any] | None, with_n: bool = True) -> str:
    if metric is None:
        return "—"
    if metric.get("ci95") is None:  # a number a paper reports: no interval, no items
        return f"{metric['mean']:.4g}"
    low, high = metric["ci95"]
    text = f"{metric['mean']:.3f} [{low:.3f}, {high:.3f}]"
    return f"{text} n={metric['n']}" if with_n else text


def markdown_row(cells: list[str]) -> str:
    """One Markdown table row; a `|` inside a cell (a label, an option value) is escaped, not a new column."""
    return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"


def _cells(row: dict[str, Any], names: list[str], with_n: bool = True) -> list[str]:
    if row["kind"] == "reported":
        return _reported_cells(row, names)
    cost = row["cost"]
    seeds = ",".join(map(str, row["seeds"])) or "—"
    status = row["status"] if row["status"] != "complete" else ""
    label = f"{row['row']} ({row['model']})" if row["kind"] == "reference" else row["row"]
    return ([label, row["kind"], seeds] + [format_metric(row["metrics"].get(n), with_n) for n in names]
            + [f"{cost.get('train_seconds', 0):.0f}", f"{cost.get('teacher_forwards', 0):.0f}", status])


def _reported_cells(row: dict[str, Any], names: list[str]) -> list[str]:
    """A paper's number beside the row that reproduces it, with Δ = reproduced − reported."""
    delta = row["reported"].get("delta")
    metrics = [format_metric(row["metrics"][n]) + ("" if delta is None else f" (Δ {delta:+.3f})")
               if n in row["metrics"] else "" for n in names]
    status = "verified" if row["reported"]["verified"] else "unchecked"
    return [row["row"], "reported", "—"] + metrics + ["—", "—", status]


def _header(names: list[str]) -> list[str]:
    return ["row", "kind", "seeds"] + [f"{n} (95% CI)" for n in names] + ["train s", "teacher fwd", "status"]


def _item_counts(board: dict[str, Any], names: list[str]) -> str:
    return "; ".join(f"{name} n={'/'.join(map(str, _item_counts_of(board, name)))}" for name in names)


def to_markdown(board: dict[str, Any]) -> str:
    names = metric_names(board)
    lines = [f"# Leaderboard: {board['recipe']['name']}", "", *_presentation(board),
             markdown_row(_header(names)), "|" + "---|" * len(_header(names))]
    lines += [markdown_row(_cells(row, names)) for row in board["rows"]]
    lines += ["", "Mean over items (and seeds) with a 95% CI: over seeds and items for a row with several seeds (t at "
              "Satterthwaite's df), a percentile bootstrap over items, conditional on the trained model, for one."]
    if any(p.get("ratio_metrics") or p.get("macro_metrics") for p in board.get("protocols", {}).values()):
        lines.append("Pooled metrics (listed per benchmark below) are ratios of sums over items (Σnumerator / "
                     "Σdenominator) or macro means of such figures; their CI resamples items and recomputes them.")
    if any(row["kind"] == "reported" for row in board["rows"]):
        lines.append("`reported` rows: the number a paper reports for the row above (Δ = reproduced − reported; "
                     "see `distillbench list reported` for each number's protocol).")
    for bench, protocol in board.get("protocols", {}).items():
        pooled = [*(protocol.get("ratio_metrics") or {}), *(protocol.get("macro_metrics") or {})]
        settings = ", ".join(f"{k}={v}" for k, v in protocol.items() if k not in ("ratio_metrics", "macro_metrics"))
        lines.append(f"- `{bench}`: {settings}" + (f"; pooled: {', '.join(pooled)}" if pooled else ""))
    for row in board["rows"]:
        for error in row.get("errors", []):
            lines.append(f"- `{row['row']}` failed: {error}")
    if board.get("reported_elsewhere"):
        lines += ["", reported_markdown(board["reported_elsewhere"]).rstrip("\n")]
    return "\n".join(lines + tuning_markdown(board)) + "\n"


def tuning_markdown(board: dict[str, Any]) -> list[str]:
    """The tuning table of a recipe with a tune block: each method row's chosen options, its trials (distinct
    trainings each), best dev objective, the dev objective of the student it starts from (where the search found
    nothing better, the row says so) and tuning train seconds; rows the recipe set by hand read 'untuned'."""
    tune = board["recipe"].get("tune")
    if not tune:
        return []
    objective = tune["objective"] if isinstance(tune["objective"], str) else " + ".join(
        f"{weight}·{metric}" for metric, weight in tune["objective"].items())
    dev = ", ".join(f"{spec['name']}" + "".join(f" {k}={v}" for k, v in spec.get("params", {}).items())
                    for spec in tune["benchmarks"])
    lines = ["", "## Tuning", "",
             f"Each tuned row got {tune['trials']} trial(s) ({tune['sampler']} sampler, seed {tune['seed']}) over its "
             f"method's search space and learning rates {tune['learning_rate']}, chosen on {objective} on the dev "
             f"benchmarks ({dev}); the chosen options were then trained with the recipe's seeds and scored on test.",
             "", "| row | chosen | trials | best dev objective | its start's dev objective | tuning train s |",
             "|---|---|---|---|---|---|"]
    for row in board["rows"]:
        tuning = row.get("tuning")
        if tuning is None:
            continue
        if tuning == "untuned":
            lines.append(markdown_row([row["row"], "untuned: the recipe's options", "", "", "", ""]))
            continue
        chosen = ", ".join(f"{k}={v}" for k, v in _flat_options(tuning["chosen"] or {}).items())
        chosen = "; ".join(part for part in (chosen, tuning.get("note", "")) if part)
        lines.append(markdown_row([row["row"], chosen, tuning["trials"],
                                   "" if tuning["best_dev"] is None else f"{tuning['best_dev']:.4g}",
                                   "" if tuning.get("start_dev") is None else f"{tuning['start_dev']:.4g}",
                                   f"{tuning['train_seconds']:.0f}"]))
    return lines


def _flat_options(options: dict[str, Any]) -> dict[str, Any]:
    """{'beta': 0.1, 'budget': {'learning_rate': 0.001}} → {'beta': 0.1, 'learning_rate': 0.001}."""
    flat: dict[str, Any] = {}
    for key, value in options.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    return flat


def _presentation(board: dict[str, Any]) -> list[str]:
    """What the recipe's `leaderboard` section puts above the table of every metric: its description and
    headline table (none for a recipe without one)."""
    spec = board["recipe"].get("leaderboard") or {}
    lines = [spec["description"], ""] if spec.get("description") else []
    if spec.get("headline"):
        lines += [*_headline(board, spec["headline"]), "", "## Every metric", ""]
    return lines


def _headline(board: dict[str, Any], headline: dict[str, str]) -> list[str]:
    """The headline table: one column per chosen metric ('<benchmark>/<metric>') or cost field ('cost.<field>')."""
    header = ["row", *headline.values()]
    lines = [markdown_row(header), "|" + "---|" * len(header)]
    for row in board["rows"]:
        lines.append(markdown_row([row["row"], *(_headline_cell(row, key) for key in headline)]))
    counts = [f"{title} n={'/'.join(map(str, counts))}" for key, title in headline.items()
              if (counts := _item_counts_of(board, key))]
    return lines + ["", "Mean [95% CI] as in the table below" + (f"; {', '.join(counts)}." if counts else ".")]


def _headline_cell(row: dict[str, Any], key: str) -> str:
    if key.startswith("cost."):
        value = row["cost"].get(key.removeprefix("cost."))
        return "—" if value is None else f"{value:.4g}"
    return format_metric(row["metrics"].get(key), with_n=False)


def _item_counts_of(board: dict[str, Any], metric: str) -> list[int]:
    return sorted({row["metrics"][metric]["n"] for row in board["rows"]
                   if metric in row["metrics"] and row["kind"] != "reported"})


def print_table(board: dict[str, Any], console: Console | None = None) -> None:
    names = metric_names(board)
    table = Table(title=escape(f"distillbench leaderboard: {board['recipe']['name']}"),
                  caption=escape(f"mean [95% bootstrap CI] over items; {_item_counts(board, names)}"))
    for column in _header(names):
        table.add_column(escape(column), overflow="fold")  # a metric may be named like accuracy[number]
    for row in board["rows"]:
        table.add_row(*(escape(text) for text in _cells(row, names, with_n=False)))
    console = console or Console(width=200)
    console.print(table)
    if board.get("reported_elsewhere"):
        print_reported(board["reported_elsewhere"], console, title="reported by the papers (not reproduced here)")


def print_reported(entries: list[dict[str, Any]], console: Console | None = None,
                   title: str = "numbers the seed papers report") -> None:
    table = Table(title=title, caption="value on distillbench's scale; 'as printed' is the source's own text")
    for column in SECTION_HEADER:
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(*(escape(text) for text in reported_cells(entry)))
    (console or Console(width=200)).print(table)


def to_csv(board: dict[str, Any]) -> str:
    """One line per row and metric: the tidy form for pandas and spreadsheets."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["row", "kind", "method", "model", "seeds", "status", "metric", "mean", "ci95_low", "ci95_high",
                     "n", "train_seconds", "teacher_forwards"])
    for row in board["rows"]:
        for metric, value in row["metrics"].items():
            low, high = value["ci95"] or ("", "")  # reported rows have no interval
            writer.writerow([row["row"], row["kind"], row["method"] or "", row["model"],
                             " ".join(map(str, row["seeds"])), row["status"], metric, value["mean"], low,
                             high, "" if value["n"] is None else value["n"], row["cost"].get("train_seconds", ""),
                             row["cost"].get("teacher_forwards", "")])
    return buffer.getvalue()


def write_all(board: dict[str, Any], directory: Path, appendix: str = "") -> None:
    """leaderboard.{json,md,csv} in `directory`; `appendix` follows the Markdown table (a head-to-head)."""
    write_text_atomic(directory / "leaderboard.json", json.dumps(board, indent=1) + "\n")
    write_text_atomic(directory / "leaderboard.md", to_markdown(board) + (f"\n{appendix}" if appendix else ""))
    write_text_atomic(directory / "leaderboard.csv", to_csv(board))


_VERSUS_HEADER = ["row", "metric", "Δ vs {versus}", "95% CI", "p", "p (Holm)", "test", "n", ""]


def _versus_cells(c: dict[str, Any]) -> list[str]:
    low, high = c["ci95"]
    return [c["row"], c["metric"], f"{c['diff']:+.3f}", f"[{low:+.3f}, {high:+.3f}]", format_p(c),
            ("≤ " if c.get("p_holm_is_bound") else "") + f"{c['p_holm']:.3g}", c["test"], str(c["n"]),
            "*" if c["significant"] else ""]


def format_p(result: dict[str, Any]) -> str:
    """A p-value, or "p < 1/(R+1)" where a resampling test found no resample as extreme (its floor)."""
    if result.get("p") is None:
        return "—"
    if result.get("p_at_floor"):
        return f"< {result['p_floor']:.2g}"
    return f"{result['p']:.3g}"


def versus_markdown(comparisons: list[dict[str, Any]], versus: str) -> str:
    header = [h.format(versus=versus) for h in _VERSUS_HEADER]
    lines = [f"## Head to head against `{versus}`", "", markdown_row(header), "|" + "---|" * len(header)]
    lines += [markdown_row(_versus_cells(c)) for c in comparisons]
    lines += ["", "Paired over the items both rows scored, and over seeds where a row has several (a t-test of "
              "seeds × items); * = significant at 0.05 after Holm correction; \"< x\": the resampling test's "
              "floor 1/(R+1), a bound."]
    return "\n".join(lines) + "\n"


def print_versus(comparisons: list[dict[str, Any]], versus: str, console: Console | None = None) -> None:
    table = Table(title=escape(f"head to head against {versus} (* significant after Holm, α=0.05)"))
    for column in _VERSUS_HEADER:
        table.add_column(escape(column.format(versus=versus)))
    for comparison in comparisons:
        table.add_row(*(escape(text) for text in _versus_cells(comparison)))
    (console or Console(width=160)).print(table)
