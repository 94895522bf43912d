#!/usr/bin/env bash
# The GPU check: run on a machine with a CUDA device whenever one is available (takes under 8 minutes) and
# paste the table into BENCHMARKS.md. Lists its steps without a GPU: bash bench/gpu_check.sh --dry-run
# Usage: bash bench/gpu_check.sh [--device cuda:N] [--quick] [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
args=("$@")
case " ${args[*]-} " in *" --device "*) ;; *) args+=(--device cuda) ;; esac
case " ${args[*]} " in *" --dry-run "*) ;; *) args+=(--json bench/results/gpu.json) ;; esac
exec timeout 480 python -m bridge bench gpu "${args[@]}"
