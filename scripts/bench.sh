#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md.
#
#   scripts/bench.sh          both sections below
#   scripts/bench.sh apply    apply of 100 new bindings at --parallelism 8 versus
#                             1, and refresh of 1,000 bindings in bulk versus per
#                             resource, against moto and the Kubernetes test API
#                             server, each behind the fault proxy adding 50 ms to
#                             every round trip (about 5 minutes, needs moto)
#   scripts/bench.sh plan     validate, graph and plan from a snapshot of
#                             generated stacks of 1,000, 10,000 and 100,000
#                             bindings, no network (about 7 minutes; set
#                             BENCH_SIZES=1000,10000 and BENCH_RUNS=3 for less)
set -euo pipefail
cd "$(dirname "$0")/.."
section="${1:-all}"
case "$section" in
  all | apply | plan) ;;
  *) echo "usage: $0 [all|apply|plan]" >&2; exit 2 ;;
esac

if [[ "$section" == all || "$section" == plan ]]; then
  cargo build --release --bin irsa --quiet
  python3 scripts/bench-plan.py --sizes "${BENCH_SIZES:-1000,10000,100000}" --runs "${BENCH_RUNS:-5}" \
    > target/bench-plan.md
  cat target/bench-plan.md
fi
[[ "$section" == plan ]] && exit 0

if ! python3 -c 'import moto, importlib.metadata as m; assert m.version("moto") == "5.2.5"' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r tests/moto-requirements.txt
fi
cargo build --release --tests --quiet
out=$(cargo test --release --test it bench_ -- --ignored --nocapture --test-threads 1 2>&1 | grep '^BENCH ' | sed 's/^BENCH //')
{
  echo "| what | how | wall time | calls | result |"
  echo "|---|---|---:|---|---|"
  echo "$out"
} > target/bench-table.md
cat target/bench-table.md
