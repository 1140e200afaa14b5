# Entry points; the real work is in scripts/ (see README.md).
#   make test    everything CI runs: fmt, one compile with clippy's lints, cargo test (contract suite on moto),
#                the API fuzz, cfn-lint, sam validate
#   make run     the whole API locally with demo data (ARGS="--port 8080" to pass flags)
#   make lint    fmt check, the compile with clippy's lints, cfn-lint, sam validate (no tests run)
#   make build   sam build: arm64 Lambda binaries via cargo-lambda, no Docker
#   make fmt     format the Rust code
#   make bench   every benchmark in BENCHMARKS.md, one after the other (about half an hour)
#   make contract  regenerate openapi.json and the cargo-lambda watch router from the functions' routes

SHELL := bash
VENV_BIN := $(CURDIR)/.venv/bin

.PHONY: test run lint build fmt tools contract bench

test:
	scripts/test.sh

run:
	scripts/run.sh $(ARGS)

lint:
	scripts/test.sh lint

tools:
	scripts/test.sh tools

build: tools
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(VENV_BIN):$$PATH" SAM_CLI_TELEMETRY=0 sam build

fmt:
	cargo fmt --all

contract:
	cargo run -q -p marketplace-admin -- api-contract

bench: tools
	cargo run --release -p marketplace-tests --example scheduled_throughput
	cargo run --release -p marketplace-tests --example checkout_latency
	cargo run --release -p marketplace-tests --example password_reset_timing
	CARGO_PROFILE_RELEASE_OPT_LEVEL=3 cargo run --release -p marketplace-shared --example password_hash_bench -- 40
	cargo run --release -p marketplace-tests --example gateway_load
	cargo run --release -p marketplace-tests --example request_units
	python3 scripts/cost_model.py
	PATH="$(VENV_BIN):$$PATH" cargo run --release -p marketplace-bench --bin lambda-harness -- --arm64
