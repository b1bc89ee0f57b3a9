# Deploy speed, downtime and rollouts on real staging guests beside the hand-written
# baseline (needs root, ~15 min). Results: bench/results/<UTC time>.jsonl, compared with
# bench/results/reference.jsonl. BENCH_ARGS: e.g. --reps 5, --save-reference, --strict
# (exit 1 when a target is missed), --parts speed,steady,rollout,build, --fleet 1,4,8.
# BENCH_STAGING_INDEX: the first guest; the rollout part boots it and the next 7.
BENCH_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
BENCH_STAGING_INDEX ?= 190
BENCH_ARGS ?=

bench: setup ## deploy speed, downtime, rollouts on guests $BENCH_STAGING_INDEX.. vs the baseline (BENCHMARKS.md)
	cd $(BENCH_DIR) && BENCH_STAGING_INDEX=$(BENCH_STAGING_INDEX) $(BIN)/python -m bench.bench $(BENCH_ARGS)
