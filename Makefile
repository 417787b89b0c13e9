# The two commands a newcomer needs: `make run` and `make test`. Both install what they need first.
# Builds go to a target folder outside the checkout so that repeated runs (and CI) are incremental.
CARGO_TARGET_DIR ?= $(HOME)/.cache/huddle/target
export CARGO_TARGET_DIR
HUDDLE_DATA ?= $(HOME)/.local/share/huddle/db
LISTEN ?= 127.0.0.1:9000

.PHONY: deps run test bench fmt

deps:
	@scripts/install-deps.sh

## Start huddle-db (the embedded signaling database) in the foreground.
run: deps
	cargo run --release -p rtdb --bin huddle-db -- --listen $(LISTEN) --data $(HUDDLE_DATA)

## Formatting, lints, and every test of the workspace.
test: deps
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

## Benchmarks (figures go to docs/benchmarks.md by hand; huddle-web-bench runs headless Chromium).
bench: deps
	cargo build --release -p rtdb -p peer
	$(CARGO_TARGET_DIR)/release/huddle-db-bench
	$(CARGO_TARGET_DIR)/release/huddle-mesh-bench
	$(CARGO_TARGET_DIR)/release/huddle-web-bench

fmt:
	cargo fmt --all
