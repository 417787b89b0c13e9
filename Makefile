# The two commands a newcomer needs: `make run` and `make test`. Both install what they need first.
# Builds go to a target folder outside the checkout so that repeated runs (and CI) are incremental.
CARGO_TARGET_DIR ?= $(HOME)/.cache/huddle/target
export CARGO_TARGET_DIR
HUDDLE_DATA ?= $(HOME)/.local/share/huddle/db
LISTEN ?= 127.0.0.1:9000

.PHONY: deps run db test test-deb bench fmt

deps:
	@scripts/install-deps.sh test

## Build and start the desktop app (it starts its own database; no configuration needed).
run:
	@scripts/install-deps.sh run
	cargo run --release --bin huddle

## Only huddle-db, the signaling database, in the foreground (e.g. to host rooms for a LAN).
db:
	@scripts/install-deps.sh run
	cargo run --release -p rtdb --bin huddle-db -- --listen $(LISTEN) --data $(HUDDLE_DATA)

## Formatting, lints, every test of the workspace (the app's end to end under Xvfb included),
## then the .deb: built, installed, started.
test: deps
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace
	scripts/test-deb.sh

## Builds the .deb with the Tauri CLI, installs it and checks that the installed app starts.
test-deb: deps
	scripts/test-deb.sh

## Benchmarks (figures go to docs/benchmarks.md by hand; huddle-web-bench runs headless Chromium).
bench: deps
	cargo build --release -p rtdb -p peer
	$(CARGO_TARGET_DIR)/release/huddle-db-bench
	$(CARGO_TARGET_DIR)/release/huddle-mesh-bench
	$(CARGO_TARGET_DIR)/release/huddle-web-bench

fmt:
	cargo fmt --all
