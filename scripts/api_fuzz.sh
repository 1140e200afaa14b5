#!/usr/bin/env bash
# Property-based API conformance (a step of `make test`, see scripts/test.sh). Logs
# in to a running local stack as the demo farmer and admin, then runs schemathesis
# three times over every operation of BASE_URL/openapi.json: anonymously, as the
# farmer and as the admin. Each run sends examples, coverage cases (boundaries and
# schema-violating inputs), random positive and negative data and short stateful
# sequences, and checks every answer with not_a_server_error,
# status_code_conformance, content_type_conformance, response_schema_conformance
# and negative_data_rejection. Prints one line per run and a total, lists every
# failure with a curl line to reproduce it, and exits non-zero on any failure or
# error, or when fewer than API_FUZZ_MIN_REQUESTS requests were sent.
#
# Usage: scripts/api_fuzz.sh BASE_URL    e.g. http://127.0.0.1:3000
#   BASE_URL is a loopback address of a marketplace-local seeded with the demo
#   accounts (--seed). Only BASE_URL is ever contacted; no redirects are followed.
# Environment (all optional):
#   API_FUZZ_MAX_EXAMPLES  schemathesis --max-examples (default 16), random cases
#                          per operation; the other phases add ~1 500 requests a run
#                          (16 sends about 6 700 requests in all, 20 about 7 200,
#                          35 about 9 100, 100 about 17 500)
#   API_FUZZ_SEED          hypothesis seed (default 20240917); the same seed sends
#                          the same inputs, the stack's own state aside
#   API_FUZZ_MIN_REQUESTS  fewest requests over the three runs (default 6000)
#   API_FUZZ_REPORTS       keep schemathesis' output and reports (JUnit, HAR, JSON)
#                          in this directory instead of a removed temporary one
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=$ROOT/.venv

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BASE_URL   (a running, seeded marketplace-local, e.g. http://127.0.0.1:3000)" >&2
    exit 2
fi
BASE=${1%/}
case "$BASE" in
http://127.0.0.1:* | http://localhost:* | "http://[::1]:"*) ;;
*)
    echo "api fuzz: $BASE is not a loopback http://host:port; refusing to fuzz it" >&2
    exit 2
    ;;
esac
for tool in python st; do
    if [[ ! -x $VENV/bin/$tool ]]; then
        echo "api fuzz: $VENV/bin/$tool is missing; run scripts/test.sh tools" >&2
        exit 1
    fi
done

MAX_EXAMPLES=${API_FUZZ_MAX_EXAMPLES:-16}
SEED=${API_FUZZ_SEED:-20240917}
MIN_REQUESTS=${API_FUZZ_MIN_REQUESTS:-6000}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection

# Loopback only: no proxy may sit between schemathesis and the stack.
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY

if [[ -n ${API_FUZZ_REPORTS:-} ]]; then
    WORK=$API_FUZZ_REPORTS
    mkdir -p "$WORK"
    WORK=$(cd "$WORK" && pwd)
else
    WORK=$(mktemp -d -t api-fuzz.XXXXXX)
    trap 'rm -rf "$WORK"' EXIT
fi

# What the CLI cannot say. auto-signup off: the anonymous run stays anonymous
# (schemathesis would otherwise register and log in through /auth/*). No cache:
# every run starts from the seed alone. Two statuses join those that count as
# rejecting invalid data: 413, the documented answer of POST /products/{id}/images
# to a `size` above its maximum, and 412, a failed If-Match, which RFC 9110 13.2.1
# evaluates before the request content is looked at.
cat >"$WORK/schemathesis.toml" <<'TOML'
[auth]
auto-signup = false

[cache]
enabled = false

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "412", "413", "415", "422", "428", "429", "5xx"]
TOML

# call METHOD PATH [BODY] [TOKEN] [FIELD]: one JSON request to the stack; prints
# FIELD of the JSON answer (a /-separated path, e.g. items/0/id), or the answer.
call() {
    "$VENV/bin/python" - "$BASE" "$@" <<'PY'
import json, sys, urllib.request
base, method, path, body, token, field = (sys.argv[1:] + [""] * 6)[:6]
headers = {"content-type": "application/json"}
if token:
    headers["authorization"] = f"Bearer {token}"
request = urllib.request.Request(
    base + path, data=body.encode() if body else None, headers=headers, method=method
)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(request, timeout=10) as response:
        answer = json.load(response)
    for key in filter(None, field.split("/")):
        answer = answer[int(key) if isinstance(answer, list) else key]
except Exception as exc:  # an HTTP error, a refused connection, an answer without FIELD
    hint = ""
    if getattr(exc, "code", None) == 429:
        # Earlier fuzzing sent wrong passwords for the demo emails (they are the
        # schema's examples), and the stack locks an email after failed logins.
        hint = " (the demo email is locked after failed logins: fuzz a freshly started stack)"
    sys.exit(f"api fuzz: {method} {base}{path} failed: {exc}{hint}")
print(answer if isinstance(answer, str) else json.dumps(answer))
PY
}

# login EMAIL PASSWORD: prints the access token (15 minutes, far longer than a run).
login() {
    call POST /auth/login "{\"email\": \"$1\", \"password\": \"$2\"}" "" accessToken
}

# product TOKEN: lists one product of the farmer with TOKEN, in the first seeded
# category. The stack is seeded without products; with one, the schema-violating
# cases schemathesis sends to /products/{id} early in a run reach a real product
# instead of ending in 404 (the run picks ids up from GET /products). Without it
# the fuzzing still runs, so a failure here is only a warning.
product() {
    local category
    if ! category=$(call GET '/categories?limit=1' "" "" items/0/id) ||
        ! call POST /products "{\"name\": \"Fuzz Fixture Beans\", \"categoryId\": \"$category\", \"price\": 300, \"unit\": \"kg\", \"stock\": 10}" "$1" id >/dev/null; then
        echo "api fuzz: warning: could not list a fixture product (above); fuzzing without one" >&2
    fi
}

# summarize NAME DIR RC SECONDS: reads one run's reports, prints its line and its
# failures, and writes "requests operations server_errors conformance errors" to
# DIR/counts. Anything unreadable (no report: schemathesis died) is an error.
summarize() {
    "$VENV/bin/python" - "$@" <<'PY'
import glob, json, os, sys
import xml.etree.ElementTree as ET

name, directory, rc, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
reports = os.path.join(directory, "reports")

def only(pattern):
    found = sorted(glob.glob(os.path.join(reports, pattern)))
    return found[-1] if found else None

requests = operations = server = conformance = errors = 0
problems = []
try:
    with open(only("har-*.json"), encoding="utf-8") as fd:
        requests = len(json.load(fd)["log"]["entries"])
    with open(only("json-*.json"), encoding="utf-8") as fd:
        report = json.load(fd)
except Exception as exc:
    report = None
    problems.append(f"no readable schemathesis report ({exc.__class__.__name__}: {exc})")

if report is not None:
    operations = (report.get("operations") or {}).get("tested") or 0
    for group in report.get("failures", []):
        # ST101/ST102: a 5xx answer (not_a_server_error); every other code is a conformance failure.
        if group["code"] in ("ST101", "ST102"):
            server += group["count"]
        else:
            conformance += group["count"]
    for error in report.get("errors", []):
        errors += error["count"]
        problems.append(f"{error['count']} x {error['title']}")
    if not report.get("complete"):
        problems.append(f"the run did not finish (stop reason: {report.get('stop_reason')})")
    if report.get("test_cases", {}).get("errored"):
        errors += report["test_cases"]["errored"]
        problems.append(f"{report['test_cases']['errored']} test cases errored")
if rc != 0 and not (server or conformance or errors or problems):
    problems.append(f"schemathesis exited with {rc} but reported no failure")
if problems:
    errors = max(errors, 1)

print(
    f"api fuzz {name}: {requests} requests over {operations} operations in {seconds}s: "
    f"{server} server errors, {conformance} conformance failures"
    + (f", {errors} errors" if errors else "")
)
for problem in problems:
    print(f"  error: {problem}")

# The failures as schemathesis wrote them into the JUnit report (check, why, the
# answer, a curl line), blank lines dropped and long lines cut.
junit = only("junit-*.xml")
if junit and (server or conformance or errors):
    for case in ET.parse(junit).getroot().iter("testcase"):
        for outcome in list(case.iter("failure")) + list(case.iter("error")):
            print(f"  --- [{name}] {case.get('name')}")
            for line in (outcome.text or "").splitlines():
                if not line.strip():
                    continue
                if len(line) > 400:
                    line = line[:400] + f" ... ({len(line) - 400} more characters)"
                print(f"    {line}")

with open(os.path.join(directory, "counts"), "w", encoding="utf-8") as fd:
    fd.write(f"{requests} {operations} {server} {conformance} {errors}\n")
PY
}

# fuzz NAME [HEADER]: one schemathesis run, as NAME, with HEADER on every request.
fuzz() {
    local name=$1 dir=$WORK/$1 start=$SECONDS rc=0
    shift
    local auth=()
    if [[ $# -gt 0 ]]; then
        auth=(--header "$1")
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    # Run inside DIR: schemathesis and hypothesis keep state in the working directory.
    # One worker: with two threads, hypothesis describing a filter lambda calls
    # ast.parse concurrently, which CPython 3.11.7 (this machine's) can fail with
    # "SystemError: AST constructor recursion depth mismatch" (a tool crash, not
    # an API failure; seen once the document grew past 30 operations).
    (
        cd "$dir"
        timeout -k 10 300 "$VENV/bin/st" --no-color --config-file "$WORK/schemathesis.toml" \
            run "$BASE/openapi.json" --url "$BASE" "${auth[@]}" \
            --checks "$CHECKS" \
            --phases examples,coverage,fuzzing,stateful \
            --mode all --max-examples "$MAX_EXAMPLES" --seed "$SEED" \
            --continue-on-failure --workers 1 \
            --request-timeout 10 --max-redirects 0 \
            --generation-database none \
            --report junit,har,json --report-dir reports
    ) >"$dir/output.txt" 2>&1 || rc=$?
    summarize "$name" "$dir" "$rc" $((SECONDS - start)) || true
    # Errors are not check failures (no schema, a crash, timeouts): show what schemathesis said.
    if [[ ! -s $dir/counts ]] || [[ $(cut -d' ' -f5 "$dir/counts") != 0 ]]; then
        echo "  schemathesis output (last 40 lines):"
        tail -n 40 "$dir/output.txt" | sed 's/^/    /'
    fi
}

FARMER=$(login farmer.ana@example.com ana-demo-password)
ADMIN=$(login admin@example.com admin-demo-password)

echo "schemathesis $("$VENV/bin/st" --version | awk '{print $NF}') against $BASE/openapi.json" \
    "(checks $CHECKS; --seed $SEED --max-examples $MAX_EXAMPLES)"
product "$FARMER"
fuzz anonymous
product "$FARMER"
fuzz farmer "Authorization: Bearer $FARMER"
product "$FARMER"
fuzz admin "Authorization: Bearer $ADMIN"

# Totals over the three runs.
total=0 operations=0 server=0 conformance=0 errors=0 per_run=""
for name in anonymous farmer admin; do
    read -r r o s c e <"$WORK/$name/counts" || { r=0 o=0 s=0 c=0 e=1; }
    total=$((total + r))
    ((o > operations)) && operations=$o
    server=$((server + s))
    conformance=$((conformance + c))
    errors=$((errors + e))
    per_run+="${per_run:+, }$name $r"
done
line="api fuzz: $total requests over $operations operations ($per_run):"
line+=" $server server errors, $conformance conformance failures"
((errors > 0)) && line+=", $errors errors"
if [[ $server -gt 0 || $conformance -gt 0 ]]; then
    echo "(curl lines show 'Authorization: [Filtered]': the farmer run logs in as farmer.ana@example.com, the admin run as admin@example.com)"
fi
if [[ -n ${API_FUZZ_REPORTS:-} ]]; then
    echo "reports in $WORK/{anonymous,farmer,admin}/reports, schemathesis' output in .../output.txt"
fi
echo "$line"
if ((total < MIN_REQUESTS)); then
    echo "api fuzz: only $total requests were sent; at least $MIN_REQUESTS are required" >&2
    exit 1
fi
if ((server + conformance + errors > 0)); then
    exit 1
fi
