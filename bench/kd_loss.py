"""Chunked fused-linear KD losses vs the naive losses on full logits: peak memory and time.

    .venv/bin/python bench/kd_loss.py                    # Qwen2.5-0.5B head, 2,048 tokens: ~40 min on 2 busy cores
    .venv/bin/python bench/kd_loss.py --tokens 256 --repeats 1 --chunk-sizes   # a quick look, with a chunk-size sweep

One forward + backward of each variant, all in one run, on the shapes of Qwen2.5-0.5B's
LM head (hidden 896, vocabulary 151,936), fp32 on CPU, every token carrying a loss:

    naive_forward_kl / naive_jsd     logits = hidden @ weight.T, then kd.forward_kl_loss / gkd.generalized_jsd_loss
    trl_jsd                          the same logits, then TRL's GKDTrainer.generalized_jsd_loss (β=0.5)
    chunked_forward_kl / chunked_jsd methods/llm/chunked.py from the hidden states; the teacher as logits (same inputs)
    chunked_forward_kl_recompute     the same through chunked_values: the logits recomputed in backward instead of
                                     the gradients computed in forward (the design chunked losses do not use)
    naive_forward_kl_teacher_head    the teacher given as hidden states + LM head: its logits computed in the step
    chunked_forward_kl_teacher_head  the same inputs, chunked on both sides (no teacher logits at all)

Peak memory: each variant runs in a fresh subprocess. It allocates its inputs, runs the
warm-up steps, reads VmRSS from /proc/self/status as the baseline, resets the kernel's
high-water mark (writing 5 to /proc/self/clear_refs), runs the timed steps and reads VmHWM:
peak = VmHWM − baseline, the memory a step needs beyond its inputs (the weight gradient
included, the same [V, H] in every variant). tracemalloc does not see torch's allocations,
hence the kernel's counters (Linux only). Time: the process's CPU time (all threads) of the
fastest timed step, wall time beside it: on a machine whose cores other processes share,
wall time stretches unevenly and CPU time much less. Writes bench/results/kd_loss.json and
prints the ratios.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

HIDDEN, VOCAB = 896, 151_936  # Qwen2.5-0.5B (the teacher: the same head shape)
BETA = 0.5
TARGETS = {"peak_memory_ratio_vs_naive": 0.25, "time_ratio_vs_naive": 1.2}
RESULTS = Path(__file__).parent / "results" / "kd_loss.json"
# variant -> the variant it is compared with
BASELINE_OF = {
    "naive_forward_kl": "naive_forward_kl",
    "chunked_forward_kl": "naive_forward_kl",
    "chunked_forward_kl_recompute": "naive_forward_kl",
    "naive_forward_kl_teacher_head": "naive_forward_kl_teacher_head",
    "chunked_forward_kl_teacher_head": "naive_forward_kl_teacher_head",
    "naive_jsd": "naive_jsd",
    "chunked_jsd": "naive_jsd",
    "trl_jsd": "naive_jsd",
}
VARIANTS = tuple(BASELINE_OF)


def _loss_fn(variant: str, chunk_size: int):
    """The variant as a function of (hidden, weight, teacher, labels), the teacher as logits or a TeacherHead."""
    from distillbench.kinds.text_lm.chunked import TeacherHead, chunked_values
    from distillbench.methods.llm import chunked
    from distillbench.methods.llm.gkd import generalized_jsd_loss
    from distillbench.methods.llm.kd import forward_kl_loss

    def naive_teacher_logits(teacher):
        if isinstance(teacher, TeacherHead):
            with torch.no_grad():
                return teacher.hidden @ teacher.weight.T
        return teacher

    def recompute(h, w, t, labels):
        values = chunked_values(chunked.forward_kl_chunk, h, w, t, labels, chunk_size=chunk_size)
        return values.sum() / (labels != -100).sum()

    if variant.startswith("naive_forward_kl"):
        return lambda h, w, t, labels: forward_kl_loss(h @ w.T, naive_teacher_logits(t), labels)
    if variant == "naive_jsd":
        return lambda h, w, t, labels: generalized_jsd_loss(h @ w.T, t, labels, BETA)
    if variant == "trl_jsd":
        from trl.experimental.gkd.gkd_trainer import GKDTrainer

        return lambda h, w, t, labels: GKDTrainer.generalized_jsd_loss(h @ w.T, t, labels, beta=BETA)
    if variant == "chunked_forward_kl_recompute":
        return recompute
    if variant.startswith("chunked_forward_kl"):
        return lambda h, w, t, labels: chunked.chunked_forward_kl_loss(h, w, t, labels, chunk_size=chunk_size)
    if variant == "chunked_jsd":
        return lambda h, w, t, labels: chunked.chunked_generalized_jsd_loss(h, w, t, labels, BETA,
                                                                            chunk_size=chunk_size)
    raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(variant: str, tokens: int, repeats: int, warmup: int, chunk_size: int) -> dict:
    """One variant in this process: peak memory beyond the inputs, the fastest step's CPU and wall time."""
    from distillbench.kinds.text_lm.chunked import TeacherHead

    # the naive variants need well over 10 GB at 2,048 tokens: if memory runs out, this process is the one to go
    Path("/proc/self/oom_score_adj").write_text("1000")
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(1, tokens, HIDDEN, generator=generator).requires_grad_()
    weight = (torch.randn(VOCAB, HIDDEN, generator=generator) * 0.05).requires_grad_()
    teacher_head = TeacherHead(torch.randn(1, tokens, HIDDEN, generator=generator),
                               torch.randn(VOCAB, HIDDEN, generator=generator) * 0.1)
    # the other variants get the teacher's logits as an input, computed once, before the baseline
    teacher = teacher_head if variant.endswith("teacher_head") else teacher_head.hidden @ teacher_head.weight.T
    del teacher_head  # the logits variants keep only the logits: less to hold beside TRL's ~16 GB at 2,048 tokens
    labels = torch.randint(0, VOCAB, (1, tokens), generator=generator)
    loss_fn = _loss_fn(variant, chunk_size)

    def step() -> tuple[float, float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        loss = loss_fn(hidden, weight, teacher, labels)
        loss.backward()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        hidden.grad = weight.grad = None
        return wall, cpu, loss.item()

    for _ in range(warmup):
        step()
    baseline = _status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    timings = [step() for _ in range(repeats)]
    return {"variant": variant, "tokens": tokens, "chunk_size": chunk_size if "chunked" in variant else None,
            "peak_mib": round(_status_mib("VmHWM") - baseline, 1), "baseline_mib": round(baseline, 1),
            "cpu_seconds": round(min(cpu for _, cpu, _ in timings), 3),
            "seconds": round(min(wall for wall, _, _ in timings), 3),
            "all_cpu_seconds": [round(cpu, 3) for _, cpu, _ in timings],
            "all_seconds": [round(wall, 3) for wall, _, _ in timings], "loss": timings[0][2]}


def run_variant(variant: str, tokens: int, repeats: int, warmup: int, chunk_size: int) -> dict:
    """`measure` in a fresh interpreter, so that no variant's peak hides behind another's; a failure is recorded."""
    command = [sys.executable, __file__, "--child", variant, "--tokens", str(tokens), "--repeats", str(repeats),
               "--warmup", str(warmup), "--chunk-size", str(chunk_size)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        reason = "killed (out of memory?)" if completed.returncode == -9 else completed.stderr[-2000:]
        return {"variant": variant, "error": f"exit {completed.returncode}: {reason}"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def machine_description() -> dict:
    from distillbench.core.provenance import machine, package_versions

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu_model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
                     platform.processor())
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
    try:
        trl_version = importlib.metadata.version("trl")
    except importlib.metadata.PackageNotFoundError:
        trl_version = None
    return {**machine(), "cpu_model": cpu_model, "memory_gib": round(mem_kib / 2**20, 1), "torch": torch.__version__,
            "trl": trl_version, "packages": package_versions()}


def _load_average() -> list[float]:
    """1, 5 and 15-minute load averages: other processes on the machine slow the timings down."""
    return [float(value) for value in Path("/proc/loadavg").read_text().split()[:3]]


def _ratio(runs: dict, fast: str, slow: str, field: str) -> float | None:
    if "error" in runs[fast] or "error" in runs[slow]:
        return None
    return round(runs[fast][field] / runs[slow][field], 3)


def summarise(runs: dict, trl_runs: dict, args, chunk_size: int, load_start: list[float], sweep: list[dict],
              reused: list[str]) -> dict:
    def ratios(fast: str) -> dict:
        slow = BASELINE_OF[fast]
        return {"peak_memory": _ratio(runs, fast, slow, "peak_mib"), "time": _ratio(runs, fast, slow, "cpu_seconds"),
                "wall_time": _ratio(runs, fast, slow, "seconds")}

    per_variant = {variant: ratios(variant) for variant in runs if BASELINE_OF[variant] != variant}
    headline = ("chunked_forward_kl", "chunked_jsd")

    def worst(field: str) -> float | None:
        values = [per_variant[variant][field] for variant in headline]
        return None if None in values else max(values)

    memory, time_ratio = worst("peak_memory"), worst("time")
    return {
        "benchmark": "kd_loss",
        "shapes": {"tokens": args.tokens, "hidden": HIDDEN, "vocab": VOCAB, "dtype": "float32", "device": "cpu",
                   "beta": BETA, "chunk_size": chunk_size, "masked_tokens": 0},
        "steps": {"warmup": args.warmup, "timed": args.repeats},
        "ratio_definition": "variant / its naive baseline (BASELINE_OF) with the same inputs; the headline ratios "
                            "are the worse of chunked_forward_kl and chunked_jsd (teacher logits as input); "
                            "time = CPU time",
        "peak_memory_ratio_vs_naive": memory,
        "time_ratio_vs_naive": time_ratio,
        "wall_time_ratio_vs_naive": worst("wall_time"),
        "trl_tokens": args.trl_tokens,
        "trl_peak_memory_ratio_vs_naive": _ratio(trl_runs, "trl_jsd", "naive_jsd", "peak_mib"),
        "trl_time_ratio_vs_naive": _ratio(trl_runs, "trl_jsd", "naive_jsd", "cpu_seconds"),
        "chunked_peak_memory_ratio_vs_trl": _ratio(trl_runs, "chunked_jsd", "trl_jsd", "peak_mib"),
        "chunked_time_ratio_vs_trl": _ratio(trl_runs, "chunked_jsd", "trl_jsd", "cpu_seconds"),
        "ratios": per_variant,
        "targets": TARGETS,
        "meets_targets": {"peak_memory": memory is not None and memory <= TARGETS["peak_memory_ratio_vs_naive"],
                          "time": time_ratio is not None and time_ratio <= TARGETS["time_ratio_vs_naive"]},
        "runs": runs,
        "trl_comparison_runs": trl_runs if args.trl_tokens != args.tokens else "the runs above",
        "chunk_size_sweep": sweep,
        "reused_runs": reused,
        "reused_from": {"load_average": args.previous.get("load_average"), "steps": args.previous.get("steps")}
        if reused else None,
        "method": "each variant in a fresh subprocess; peak = VmHWM - VmRSS after the inputs (and warm-up steps), "
                  "the high-water mark reset through /proc/self/clear_refs; time = the process's CPU time "
                  "(time.process_time, all threads) of the fastest timed step, wall time beside it; CPU time because "
                  "other processes share the cores (load_average) and stretch wall time unevenly",
        "load_average": {"start": load_start, "end": _load_average()},
        "machine": machine_description(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per variant (the fastest counts)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed steps before them")
    parser.add_argument("--chunk-size", type=int, default=None, help="default: DEFAULT_CHUNK_SIZE")
    parser.add_argument("--chunk-sizes", nargs="*", type=int, default=None,
                        help="also run chunked_forward_kl at these chunk sizes (bare flag: 128 256 512 1024)")
    parser.add_argument("--trl-tokens", type=int, default=None,
                        help="tokens for the TRL comparison (TRL, naive and chunked JSD); default: --tokens")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="a previous results JSON whose runs at the same variant, tokens and chunk size are "
                             "taken as they are instead of measured again")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.trl_tokens = args.trl_tokens or args.tokens
    from distillbench.kinds.text_lm.chunked import DEFAULT_CHUNK_SIZE

    chunk_size = args.chunk_size or DEFAULT_CHUNK_SIZE
    if args.child:
        print(json.dumps(measure(args.child, args.tokens, args.repeats, args.warmup, chunk_size)))
        return

    previous = args.previous = json.loads(args.reuse.read_text()) if args.reuse else {}
    earlier_trl = previous.get("trl_comparison_runs")
    reusable = [run for run in [*previous.get("runs", {}).values(),
                                *(earlier_trl.values() if isinstance(earlier_trl, dict) else [])]
                if "error" not in run]
    load_start, reused = _load_average(), []

    def run(variant: str, tokens: int, size: int = chunk_size) -> dict:
        for old in reusable:
            if (old["variant"], old["tokens"], old["chunk_size"]) == (variant, tokens, size if "chunked" in variant
                                                                      else None):
                reused.append(f"{variant} at {tokens} tokens")
                _print_progress(variant + " (reused)", old)
                return old
        result = run_variant(variant, tokens, args.repeats, args.warmup, size)
        _print_progress(variant, result)
        return result

    runs = {variant: run(variant, args.tokens) for variant in VARIANTS if variant != "trl_jsd"}
    # TRL's JSD needs ~16 GB beyond its inputs at 2,048 tokens; --trl-tokens compares it at another size
    trl_runs = {variant: runs[variant] if args.trl_tokens == args.tokens else run(variant, args.trl_tokens)
                for variant in ("naive_jsd", "chunked_jsd")}
    trl_runs["trl_jsd"] = run("trl_jsd", args.trl_tokens)
    if args.trl_tokens == args.tokens:
        runs["trl_jsd"] = trl_runs["trl_jsd"]
    sweep = [run("chunked_forward_kl", args.tokens, size)
             for size in ([] if args.chunk_sizes is None else (args.chunk_sizes or [128, 256, 512, 1024]))]
    result = summarise(runs, trl_runs, args, chunk_size, load_start, sweep, reused)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    _print_table(result)


def _print_progress(name: str, run: dict) -> None:
    if "error" in run:
        print(f"{name:34s} failed: {run['error']}", flush=True)
    else:
        print(f"{name:34s} peak {run['peak_mib']:9.1f} MiB  {run['cpu_seconds']:8.1f} s CPU  "
              f"{run['seconds']:8.1f} s wall", flush=True)


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"KD loss, vocabulary {VOCAB}, hidden {HIDDEN}, fp32 CPU: one forward + backward")
    for column in ("variant", "tokens", "compared with", "peak MiB", "CPU s", "wall s", "memory ratio",
                   "CPU time ratio"):
        table.add_column(column, justify="left" if column in ("variant", "compared with") else "right")
    groups = [result["runs"]]
    if isinstance(result["trl_comparison_runs"], dict):
        groups.append(result["trl_comparison_runs"])
    for runs in groups:
        for variant, run in runs.items():
            baseline = BASELINE_OF[variant]
            if "error" in run:
                table.add_row(variant, "", baseline, "failed", "", "", "", "")
                continue
            table.add_row(variant, str(run["tokens"]), baseline, f"{run['peak_mib']:.0f}", f"{run['cpu_seconds']:.1f}",
                          f"{run['seconds']:.1f}", str(_ratio(runs, variant, baseline, "peak_mib")),
                          str(_ratio(runs, variant, baseline, "cpu_seconds")))
    console = Console(width=150)
    console.print(table)
    met = result["meets_targets"]
    console.print(f"chunked vs naive: memory {result['peak_memory_ratio_vs_naive']} "
                  f"(target ≤ {TARGETS['peak_memory_ratio_vs_naive']}: {'met' if met['peak_memory'] else 'missed'}), "
                  f"CPU time {result['time_ratio_vs_naive']} "
                  f"(target ≤ {TARGETS['time_ratio_vs_naive']}: {'met' if met['time'] else 'missed'}); "
                  f"at {result['trl_tokens']} tokens, TRL's JSD vs naive: memory "
                  f"{result['trl_peak_memory_ratio_vs_naive']}, CPU time {result['trl_time_ratio_vs_naive']}; "
                  f"chunked JSD vs TRL's: memory {result['chunked_peak_memory_ratio_vs_trl']}, "
                  f"CPU time {result['chunked_time_ratio_vs_trl']}")


if __name__ == "__main__":
    main()
