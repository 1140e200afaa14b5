#!/usr/bin/env bash
# The run command (`make run`): the whole API on http://127.0.0.1:3000 (PORT to
# change it) through the local gateway, on the embedded store in .data/, seeded
# with demo data. Extra arguments go to marketplace-local (`--help` lists them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec cargo run -p infra --bin marketplace-local -- --seed "$@"
