# Entry points; the real work is in scripts/ (see README.md).
#   make test    everything CI runs: fmt, clippy, cargo test (contract suite on moto), cfn-lint, sam validate
#   make run     the whole API locally with demo data (ARGS="--port 8080" to pass flags)
#   make lint    fmt check, clippy, cfn-lint, sam validate (no tests)
#   make build   sam build: arm64 Lambda binaries via cargo-lambda, no Docker
#   make fmt     format the Rust code
#   make contract  regenerate openapi.json and the cargo-lambda watch router from the functions' routes

SHELL := bash
VENV_BIN := $(CURDIR)/.venv/bin

.PHONY: test run lint build fmt tools contract

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
	cargo run -q -p infra --bin marketplace-admin -- api-contract
