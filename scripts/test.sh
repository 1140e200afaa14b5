#!/usr/bin/env bash
# The project's test command (`make test`). Installs the pinned Python tools into
# .venv (in the background, while Rust compiles), runs rustfmt, compiles the
# workspace once with clippy's lints (see `compile` below), starts moto's server
# on a free loopback port as the AWS-compatible endpoint (unless
# AWS_ENDPOINT_URL already names one), then runs the whole cargo test suite, the
# schemathesis API fuzz against a fresh local stack (scripts/api_fuzz.sh), the
# README's walkthrough (scripts/readme_walkthrough.sh), cfn-lint and sam
# validate. Stops at the first failure and exits non-zero; a missing or dead
# moto is a failure, never a skip.
#
# Usage: scripts/test.sh [all|lint|tools]
#   all    (default) everything above
#   lint   tools + fmt + the linted compile + cfn-lint + sam validate (no tests run)
#   tools  only make sure .venv holds requirements-dev.txt
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODE=${1:-all}
case "$MODE" in all | lint | tools) ;; *)
    echo "usage: $0 [all|lint|tools]" >&2
    exit 2
    ;;
esac

VENV=.venv
export SAM_CLI_TELEMETRY=0 # no telemetry calls from sam

STEPS=()    # "name  seconds" of every finished step, for the summary
CURRENT=""  # the step running now, named if it fails
MOTO_PID=""
MOTO_LOG=""
TOOLS_PID=""  # the background install of the Python tools
TOOLS_LOG=""
TEMPLATE_PID=""  # cfn-lint and sam validate, beside the tests
TEMPLATE_LOG=""
TEST_LOG=""
LOCAL_PID=""  # marketplace-local under the API fuzz
LOCAL_LOG=""
LOCAL_DATA=""
FUZZ_LOG=""   # scripts/api_fuzz.sh's output; its last line goes into the summary

# Adds up cargo's "test result: ok. N passed; M failed; K ignored; ..." lines.
test_counts() {
    awk '/^test result:/ {
            for (i = 2; i <= NF; i++) {
                if ($i ~ /^passed;?$/) p += $(i - 1)
                if ($i ~ /^failed;?$/) f += $(i - 1)
                if ($i ~ /^ignored;?$/) s += $(i - 1)
            }
        }
        END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$TEST_LOG"
}

# The "api fuzz: N requests over ..." total of scripts/api_fuzz.sh.
fuzz_counts() { grep '^api fuzz: ' "$FUZZ_LOG" | tail -n 1; }

# A loopback port free at the time of asking.
free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

stop_local() {
    if [[ -n $LOCAL_PID ]] && kill -0 "$LOCAL_PID" 2>/dev/null; then
        kill "$LOCAL_PID" 2>/dev/null || true
        wait "$LOCAL_PID" 2>/dev/null || true
    fi
    LOCAL_PID=""
    [[ -n $LOCAL_DATA ]] && rm -rf "$LOCAL_DATA"
    [[ -n $LOCAL_LOG ]] && rm -f "$LOCAL_LOG"
    LOCAL_DATA=""
    LOCAL_LOG=""
}

cleanup() {
    local rc=$?
    if [[ $rc -ne 0 && -n $TEST_LOG && -s $TEST_LOG ]]; then
        test_counts
    fi
    if [[ $rc -ne 0 && -n $FUZZ_LOG && -s $FUZZ_LOG ]]; then
        fuzz_counts || true
    fi
    stop_local
    if [[ -n $TOOLS_PID ]] && kill -0 "$TOOLS_PID" 2>/dev/null; then
        kill "$TOOLS_PID" 2>/dev/null || true # its stamp is written last: the next run installs again
        wait "$TOOLS_PID" 2>/dev/null || true
    fi
    [[ -n $TOOLS_LOG ]] && rm -f "$TOOLS_LOG"
    if [[ -n $TEMPLATE_PID ]] && kill -0 "$TEMPLATE_PID" 2>/dev/null; then
        kill "$TEMPLATE_PID" 2>/dev/null || true
        wait "$TEMPLATE_PID" 2>/dev/null || true
    fi
    [[ -n $TEMPLATE_LOG ]] && rm -f "$TEMPLATE_LOG"
    [[ -n $FUZZ_LOG ]] && rm -f "$FUZZ_LOG"
    if [[ -n $MOTO_PID ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
    [[ -n $MOTO_LOG ]] && rm -f "$MOTO_LOG"
    [[ -n $TEST_LOG ]] && rm -f "$TEST_LOG"
    if [[ $rc -ne 0 ]]; then
        printf '\n==> FAILED%s (exit %d)\n' "${CURRENT:+ at step: $CURRENT}" "$rc" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# step NAME COMMAND...: runs COMMAND as a named, timed step (set -e stops on failure).
step() {
    local name=$1 start=$SECONDS
    shift
    CURRENT=$name
    printf '\n==> %s\n' "$name"
    "$@"
    STEPS+=("$(printf '%-28s %5ss' "$name" $((SECONDS - start)))")
    CURRENT=""
}

# --- Python tools -----------------------------------------------------------
install_tools() {
    if [[ ! -x $VENV/bin/python ]]; then
        python3 -m venv "$VENV"
    fi
    local stamp=$VENV/.requirements-dev.sha256 want
    want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
    if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
        "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r requirements-dev.txt
        echo "$want" >"$stamp"
    else
        echo "requirements-dev.txt unchanged since the last install"
    fi
    local tool missing=0
    for tool in moto_server cfn-lint sam cargo-lambda st; do
        if [[ ! -x $VENV/bin/$tool ]]; then
            echo "missing $VENV/bin/$tool after installing requirements-dev.txt" >&2
            missing=1
        fi
    done
    if [[ $missing -ne 0 ]]; then
        rm -f "$stamp" # force a reinstall next time
        return 1
    fi
}

# --- the AWS-compatible endpoint --------------------------------------------
start_moto() {
    if [[ -n ${AWS_ENDPOINT_URL:-} ]]; then
        echo "AWS_ENDPOINT_URL is set; not starting moto"
        return 0
    fi
    local port
    port=$(free_port)
    MOTO_LOG=$(mktemp -t moto.XXXXXX.log)
    # One request at a time: see scripts/moto_server.py for the race it avoids.
    "$VENV/bin/python" scripts/moto_server.py 127.0.0.1 "$port" >"$MOTO_LOG" 2>&1 &
    MOTO_PID=$!
    local url="http://127.0.0.1:$port" tries
    for ((tries = 0; tries < 150; tries++)); do
        if ! kill -0 "$MOTO_PID" 2>/dev/null; then
            echo "moto_server exited before answering:" >&2
            cat "$MOTO_LOG" >&2
            return 1
        fi
        # Any HTTP answer means it is up.
        if "$VENV/bin/python" - "$url" <<'PY' 2>/dev/null; then
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1)
except urllib.error.HTTPError:
    pass
PY
            export AWS_ENDPOINT_URL=$url
            echo "moto_server (pid $MOTO_PID) answers on $url"
            return 0
        fi
        sleep 0.2
    done
    echo "moto_server did not answer on $url within 30 s:" >&2
    cat "$MOTO_LOG" >&2
    return 1
}

aws_environment() {
    local origin="from the environment"
    if [[ -n $MOTO_PID ]]; then
        origin="moto_server started by this script"
    fi
    # Defaults only: a developer may point the suite at DynamoDB Local, LocalStack
    # or a real account with their own endpoint and credentials.
    export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}
    export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
    export AWS_REGION=${AWS_REGION:-us-east-1}
    echo "aws contract suite endpoint: $AWS_ENDPOINT_URL ($origin), region $AWS_REGION"
}

# --- Rust -------------------------------------------------------------------
# One compile for lints and tests. `cargo clippy` would check the workspace
# (metadata only) and `cargo test` compile it again; instead clippy's driver
# wraps rustc for the workspace's own crates (what `cargo clippy` does, with
# codegen kept), so the test build is the lint: any clippy warning fails it.
lint_settings() {
    local driver
    driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
    if [[ -z $driver ]]; then
        echo "clippy-driver not found: install clippy (rustup component add clippy)" >&2
        return 1
    fi
    export RUSTC_WORKSPACE_WRAPPER=$driver
    export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
}

# Every target of the workspace, tests and examples included, in the feature
# set `cargo test --workspace` resolves: the function binaries that
# tests/api/lambda_binaries.rs runs and the marketplace-local under the API
# fuzz come out of this build, and `cargo test` below rebuilds nothing.
compile() {
    cargo build --workspace --all-targets
}

cargo_tests() {
    TEST_LOG=$(mktemp -t cargo-test.XXXXXX.log)
    cargo test --workspace 2>&1 | tee "$TEST_LOG"
}

# --- API fuzz against the local stack ---------------------------------------
# Starts marketplace-local (demo data, a fresh data directory, a free port), waits
# for /health, runs scripts/api_fuzz.sh against it and stops it again (cleanup
# does that too if anything fails on the way).
api_fuzz() {
    # Built by `compile`.
    local port url deadline=$((SECONDS + 60))
    port=$(free_port)
    url="http://127.0.0.1:$port"
    LOCAL_DATA=$(mktemp -d -t marketplace-local.XXXXXX)
    LOCAL_LOG=$(mktemp -t marketplace-local.XXXXXX.log)
    "${CARGO_TARGET_DIR:-target}/debug/marketplace-local" --seed --port "$port" --data-dir "$LOCAL_DATA" \
        >"$LOCAL_LOG" 2>&1 &
    LOCAL_PID=$!
    while true; do
        if ! kill -0 "$LOCAL_PID" 2>/dev/null; then
            echo "marketplace-local exited before answering:" >&2
            cat "$LOCAL_LOG" >&2
            return 1
        fi
        if "$VENV/bin/python" - "$url/health" <<'PY' 2>/dev/null; then
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
opener.open(sys.argv[1], timeout=1)
PY
            break
        fi
        if ((SECONDS >= deadline)); then
            echo "marketplace-local did not answer $url/health within 60 s:" >&2
            cat "$LOCAL_LOG" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "marketplace-local (pid $LOCAL_PID) answers on $url"
    FUZZ_LOG=$(mktemp -t api-fuzz.XXXXXX.log)
    local rc=0
    scripts/api_fuzz.sh "$url" 2>&1 | tee "$FUZZ_LOG" || rc=$?
    if [[ $rc -ne 0 ]]; then
        # What the stack itself logged about the failures (colours stripped).
        local problems
        problems=$(sed 's/\x1b\[[0-9;]*m//g' "$LOCAL_LOG" | grep -E ' (ERROR|WARN) ' | tail -n 30 | sed 's/^/  /' || true)
        if [[ -n $problems ]]; then
            echo "marketplace-local's last warnings and errors:"
            echo "$problems"
        fi
    fi
    stop_local
    return "$rc"
}

# --- the README's walkthrough against a fresh local stack --------------------
# scripts/readme_walkthrough.sh starts and stops its own marketplace-local (free
# port, temporary data directory) and runs README.md's shell blocks in order,
# failing when one does not answer what the text says. The binary is `compile`'s.
readme_walkthrough() {
    scripts/readme_walkthrough.sh "${CARGO_TARGET_DIR:-target}/debug/marketplace-local"
}

# --- template ---------------------------------------------------------------
cfn_lint() { "$VENV/bin/cfn-lint" template.yaml && echo "cfn-lint: template.yaml has no findings"; }
sam_validate() { "$VENV/bin/sam" validate --lint --region us-east-1 --template-file template.yaml; }

# join_background PID LOG: waits for a job started with `&`, shows the log it
# wrote and removes it, and returns the job's status.
join_background() {
    local rc=0
    wait "$1" || rc=$?
    cat "$2"
    rm -f "$2"
    return "$rc"
}

# The template checks started beside the tests.
join_template_checks() {
    local pid=$TEMPLATE_PID log=$TEMPLATE_LOG
    TEMPLATE_PID="" TEMPLATE_LOG=""
    join_background "$pid" "$log"
}

if [[ $MODE == tools ]]; then
    step "python tools (.venv)" install_tools
    exit 0
fi

# pip downloads and unpacks while cargo compiles; its output waits in a log.
TOOLS_LOG=$(mktemp -t tools.XXXXXX.log)
install_tools >"$TOOLS_LOG" 2>&1 &
TOOLS_PID=$!
join_tools() {
    local pid=$TOOLS_PID log=$TOOLS_LOG
    TOOLS_PID="" TOOLS_LOG=""
    join_background "$pid" "$log"
}

step "cargo fmt --check" cargo fmt --all -- --check
lint_settings
step "compile, clippy -D warnings" compile
step "python tools (.venv)" join_tools
if [[ $MODE == all ]]; then
    # The template checks need only the Python tools: they run beside the
    # tests, and their output is shown (and their failure counted) at the end.
    TEMPLATE_LOG=$(mktemp -t template-checks.XXXXXX.log)
    { cfn_lint && sam_validate; } >"$TEMPLATE_LOG" 2>&1 &
    TEMPLATE_PID=$!
    step "aws endpoint" start_moto
    aws_environment
    step "cargo test" cargo_tests
    step "api fuzz (schemathesis)" api_fuzz
    step "readme walkthrough" readme_walkthrough
    step "template checks (beside)" join_template_checks
else
    step "cfn-lint" cfn_lint
    step "sam validate --lint" sam_validate
fi

# --- summary ----------------------------------------------------------------
printf '\n==> summary\n'
printf '  %s\n' "${STEPS[@]}"
if [[ -n $TEST_LOG ]]; then
    test_counts
fi
if [[ -n $FUZZ_LOG ]]; then
    fuzz_counts
fi
echo "all ${#STEPS[@]} steps passed"
