# Deploy speed on a real staging guest beside the hand-written baseline (needs root, ~4 min).
# Results: bench/results/<UTC time>.jsonl, compared with bench/results/reference.jsonl.
# BENCH_ARGS: e.g. --reps 5, --save-reference, --strict (exit 1 when a target is missed).
BENCH_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
BENCH_STAGING_INDEX ?= 9
BENCH_ARGS ?=

bench: setup ## deploy speed on staging guest $BENCH_STAGING_INDEX vs the baseline (see BENCHMARKS.md)
	cd $(BENCH_DIR) && BENCH_STAGING_INDEX=$(BENCH_STAGING_INDEX) $(BIN)/python -m bench.bench $(BENCH_ARGS)
