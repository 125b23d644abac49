"""The chunked KD losses against the naive ones on a GPU, in fp32 and bf16: peak memory and time.

    .venv/bin/python bench/gpu_losses.py [--tokens 2048] [--repeats 3]

The variants of bench/kd_loss.py (naive and chunked forward KL and generalized JSD, on Qwen2.5-0.5B's
LM-head shapes: hidden 896, vocabulary 151,936; the teacher as logits), each in one process after
the other, on the device torch finds. Peak memory: torch.cuda.max_memory_allocated during the timed
steps minus what the inputs hold; time: the fastest of the timed steps, synchronised. Writes
bench/results/gpu_losses.json with the ratios chunked / naive per dtype, measured side by side. On a
machine without CUDA it runs on the CPU, fp32 only (memory then unmeasured, null), and says so.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from kd_loss import HIDDEN, VOCAB, _loss_fn

RESULTS = Path(__file__).parent / "results" / "gpu_losses.json"
PAIRS = {"chunked_forward_kl": "naive_forward_kl", "chunked_jsd": "naive_jsd"}


def measure(variant: str, tokens: int, dtype: torch.dtype, device: str, repeats: int, chunk_size: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(1, tokens, HIDDEN, generator=generator).to(device, dtype).requires_grad_()
    weight = (torch.randn(VOCAB, HIDDEN, generator=generator) * 0.05).to(device, dtype).requires_grad_()
    teacher = (torch.randn(1, tokens, HIDDEN, generator=generator).to(device, dtype)
               @ (torch.randn(VOCAB, HIDDEN, generator=generator) * 0.1).to(device, dtype).T)
    labels = torch.randint(0, VOCAB, (1, tokens), generator=generator).to(device)
    loss_fn = _loss_fn(variant, chunk_size)
    cuda = device == "cuda"

    def step() -> tuple[float, float]:
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        loss = loss_fn(hidden, weight, teacher, labels)
        loss.backward()
        if cuda:
            torch.cuda.synchronize()
        hidden.grad = weight.grad = None
        return time.perf_counter() - started, loss.item()

    step()  # warm-up: kernels, allocator
    baseline = None
    if cuda:
        baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    timings = [step() for _ in range(repeats)]
    peak = (torch.cuda.max_memory_allocated() - baseline) / 2**20 if cuda else None
    return {"variant": variant, "dtype": str(dtype).removeprefix("torch."), "tokens": tokens,
            "peak_mib": None if peak is None else round(peak, 1), "seconds": round(min(t for t, _ in timings), 5),
            "loss": timings[0][1]}


def main() -> None:
    from distillbench.core.provenance import machine, package_versions
    from distillbench.kinds.text_lm.chunked import DEFAULT_CHUNK_SIZE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    runs, ratios = [], {}
    # bf16 matmuls on a CPU are emulated and slow: without CUDA, fp32 only
    for dtype in (torch.float32, torch.bfloat16) if device == "cuda" else (torch.float32,):
        name = str(dtype).removeprefix("torch.")
        measured = {}
        for variant in (*PAIRS.values(), *PAIRS):
            measured[variant] = measure(variant, args.tokens, dtype, device, args.repeats, args.chunk_size)
            runs.append(measured[variant])
            print(json.dumps(measured[variant]), flush=True)
            if device == "cuda":
                torch.cuda.empty_cache()
        for fast, slow in PAIRS.items():
            memory = (None if measured[fast]["peak_mib"] is None
                      else round(measured[fast]["peak_mib"] / max(measured[slow]["peak_mib"], 1e-9), 3))
            ratios[f"{fast}/{name}"] = {"peak_memory_ratio_vs_naive": memory,
                                        "time_ratio_vs_naive": round(measured[fast]["seconds"] / measured[slow]["seconds"], 3)}
    result = {"benchmark": "gpu_losses", "device": device,
              "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu (no CUDA: memory not measured)",
              "shapes": {"tokens": args.tokens, "hidden": HIDDEN, "vocab": VOCAB, "chunk_size": args.chunk_size},
              "ratios": ratios, "runs": runs, "machine": machine(), "packages": package_versions()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    for key, value in ratios.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
