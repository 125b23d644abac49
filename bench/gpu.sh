#!/usr/bin/env bash
# For a lent GPU machine: the CUDA / bf16 figures, into bench/results/.
#   bash bench/gpu.sh
# Creates .venv when missing (make install), then records the GPU and one pocket training cell
# in fp32 and in bf16 (tokens/s and peak memory, bf16's ratios against fp32 from the same run),
# and the chunked KD losses against the naive ones in fp32 and bf16 (bench/gpu_losses.py).
set -euo pipefail
cd "$(dirname "$0")/.."
make install
mkdir -p bench/results
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > bench/results/gpu_device.csv || true
.venv/bin/python bench/gpu_cell.py
.venv/bin/python bench/gpu_losses.py
