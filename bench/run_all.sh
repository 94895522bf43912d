#!/usr/bin/env bash
# Run every benchmark suite and keep its figures: bench/results/SUITE.md (the table) and SUITE.json.
# BENCHMARKS.md quotes these files with the command that produced them. Usage: bash bench/run_all.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
export OMP_WAIT_POLICY=PASSIVE
# NDI finds the benchmark's own receiver on loopback, without mDNS (see docs/sinks.md).
if [ -z "${NDI_CONFIG_DIR:-}" ]; then
  NDI_CONFIG_DIR=$(mktemp -d)
  echo '{"ndi":{"networks":{"ips":"127.0.0.1","discovery":""}}}' > "$NDI_CONFIG_DIR/ndi-config.v1.json"
  export NDI_CONFIG_DIR
fi
for suite in ${VRBRIDGE_BENCH_SUITES:-generator encoder engine osc tracking sinks levers}; do
  echo "== vrbridge bench $suite $*" >&2
  python -m bridge bench "$suite" "$@" --json "bench/results/$suite.json" | tee "bench/results/$suite.md"
done
