#!/usr/bin/env bash
# Runs README.md's shell walkthrough as a new user would: every fenced ```sh or
# ```bash block (except those marked `no-run`, the reference command lists), in
# order, in one bash session, from an empty temporary working directory, against a
# fresh `marketplace-local --seed` on a free loopback port with a temporary data
# directory. The README's `API=http://127.0.0.1:3000` and `DATA=.data` lines are
# pointed at that stack. The blocks assert what their text says (expected statuses,
# polls with deadlines), so a step that answers otherwise stops the run; so does a
# file left in the working directory. Builds nothing.
#
# Usage: scripts/readme_walkthrough.sh [MARKETPLACE_LOCAL [README]]
#   MARKETPLACE_LOCAL  the binary to run (default: target/debug/marketplace-local)
#   README             the Markdown file whose blocks run (default: README.md)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $# -gt 2 || ${1:-} == -h || ${1:-} == --help ]]; then
    echo "usage: $0 [MARKETPLACE_LOCAL [README]]" >&2
    exit 2
fi
BIN=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/marketplace-local}
README=${2:-$ROOT/README.md}
BIN=$(realpath "$BIN")
README=$(realpath "$README")
[[ -x $BIN ]] || { echo "not an executable: $BIN (build it: cargo build -p infra --bin marketplace-local)" >&2; exit 2; }
[[ -f $README ]] || { echo "no such file: $README" >&2; exit 2; }
README_NAME=$(basename "$README")

WORK=$(mktemp -d -t readme-walkthrough.XXXXXX)
SERVER_PID=""
START=$SECONDS

cleanup() {
    local rc=$?
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK/blocks" "$WORK/cwd" "$WORK/server"

# --- the blocks ---------------------------------------------------------------
# blocks/NN.sh per runnable block; blocks/index holds "NN<TAB>line<TAB>section".
awk -v dir="$WORK/blocks" '
    function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
    !fence && /^## / { section = substr($0, 4) }
    !fence && /^```/ {
        fence = 1
        info = trim(substr($0, 4))
        split(info, words, /[ \t]+/)
        run = (words[1] == "sh" || words[1] == "bash") && info !~ /(^|[ \t])no-run([ \t]|$)/
        if (run) {
            n++
            file = sprintf("%s/%02d.sh", dir, n)
            printf "" > file
            printf "%02d\t%d\t%s\n", n, NR + 1, section > (dir "/index")
        }
        next
    }
    fence && /^```[ \t]*$/ { fence = 0; if (run) close(file); run = 0; next }
    fence && run { print > file }
' "$README"
if [[ ! -s $WORK/blocks/index ]]; then
    echo "no runnable sh or bash blocks in $README" >&2
    exit 1
fi
TOTAL=$(wc -l <"$WORK/blocks/index")

# --- the stack ----------------------------------------------------------------
# The stack is on loopback: never through a proxy (the blocks use plain curl).
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}" NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
API="http://127.0.0.1:$PORT"
DATA="$WORK/data"

# Point the README's settings at this stack; a README that no longer sets them
# would silently talk to port 3000, so that is a failure.
for setting in 'API=http://127.0.0.1:3000' 'DATA=.data'; do
    if ! grep -qE "^${setting//./\\.}([[:space:]]|$)" "$WORK"/blocks/*.sh; then
        echo "$README_NAME: no block sets $setting at the start of a line; the walkthrough needs it" >&2
        exit 1
    fi
done
for block in "$WORK"/blocks/*.sh; do
    sed -E \
        -e "s#^API=http://127\.0\.0\.1:3000([[:space:]]|\$)#API=$API\1#" \
        -e "s#^DATA=\.data([[:space:]]|\$)#DATA=$DATA\1#" \
        "$block" >"$block.tmp"
    mv "$block.tmp" "$block"
done

(cd "$WORK/server" && exec "$BIN" --seed --port "$PORT" --data-dir "$DATA" --template "$ROOT/template.yaml") \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
deadline=$((SECONDS + 60))
until curl -s -o /dev/null --max-time 1 "$API/health"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "marketplace-local exited before answering:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "marketplace-local did not answer $API/health within 60 s:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    sleep 0.2
done
echo "readme walkthrough: $TOTAL blocks of $README_NAME against marketplace-local on $API"

# --- one session, every block in order ------------------------------------------
# The driver sources each block in the same shell (so variables carry over, as in
# a pasted session) with errexit on, its output in its own log; it reports each
# passed block on fd 3, names the running one in $WORK/current, and on a failure
# writes the README line of the failing command to $WORK/failed_line.
{
    echo 'set -euo pipefail'
    printf 'trap %q ERR\n' "printf %s \"\$((__readme_line + LINENO - 1))\" >$(printf %q "$WORK/failed_line")"
    echo "cd $(printf %q "$WORK/cwd")"
    while IFS=$'\t' read -r n line section; do
        printf 'printf %%s %q >%q; __readme_line=%q\n' "$n" "$WORK/current" "$line"
        printf '__t=$SECONDS; source %q >%q 2>&1\n' "$WORK/blocks/$n.sh" "$WORK/blocks/$n.log"
        printf 'printf %q %q %q %q %q %q "$((SECONDS - __t))" >&3\n' \
            'ok      block %s/%s (%s:%s, %s) %ss\n' "$((10#$n))" "$TOTAL" "$README_NAME" "$line" "$section"
    done <"$WORK/blocks/index"
    printf 'printf done >%q\n' "$WORK/current"
} >"$WORK/driver.sh"

rc=0
LIMIT=()
command -v timeout >/dev/null && LIMIT=(timeout 300)
${LIMIT[@]+"${LIMIT[@]}"} bash "$WORK/driver.sh" 3>&1 </dev/null || rc=$?
if [[ $rc -ne 0 || $(cat "$WORK/current" 2>/dev/null) != done ]]; then
    n=$(cat "$WORK/current" 2>/dev/null || echo 01)
    IFS=$'\t' read -r _ line section < <(grep "^$n"$'\t' "$WORK/blocks/index")
    reason="exit $rc"
    [[ $rc -eq 124 ]] && reason="timed out after 300 s"
    echo "FAILED  block $((10#$n))/$TOTAL ($README_NAME:$line, $section): $reason" >&2
    if [[ -s $WORK/failed_line ]]; then
        failed=$(cat "$WORK/failed_line")
        echo "at $README_NAME:$failed: $(sed -n "${failed}p" "$README")" >&2
    fi
    echo "--- its output (last 40 lines) ---" >&2
    tail -n 40 "$WORK/blocks/$n.log" | cut -c1-300 >&2 || true
    echo "--- marketplace-local's last warnings and errors ---" >&2
    sed 's/\x1b\[[0-9;]*m//g' "$WORK/server.log" | grep -E ' (ERROR|WARN) ' | tail -n 10 >&2 || true
    echo "readme walkthrough: FAILED at block $((10#$n)) of $TOTAL ($README_NAME:$line)" >&2
    exit 1
fi

left=$(ls -A "$WORK/cwd")
if [[ -n $left ]]; then
    echo "readme walkthrough: FAILED: the blocks left files in the working directory: $(echo "$left" | tr '\n' ' ')" >&2
    exit 1
fi
echo "readme walkthrough: $TOTAL blocks passed in $((SECONDS - START)) s"
