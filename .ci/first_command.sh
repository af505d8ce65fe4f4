#!/usr/bin/env bash
# The README's first command, verbatim, on a fresh virtual environment (issue 16).
#
# Extracts the first command of README.md's first ```bash block, so the README and
# this check cannot drift, runs it in a fresh venv on a copy of the working tree with
# LATBENCH_HOME in a temporary folder, and checks that it exits 0 and that the dataset
# it names (its --key) then loads. Usage: .ci/first_command.sh [REPO]   (default: ..)
set -euo pipefail
repo="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
py="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/latbench-first.XXXXXX")"
trap 'rm -rf "$work"' EXIT

cmd="$("$py" "$repo/.ci/readme_command.py" "$repo/README.md")"
key="$("$py" "$repo/.ci/readme_command.py" "$repo/README.md" --key)"

# A copy of what a clone holds: tracked and untracked-but-not-ignored files.
mkdir "$work/src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$repo" && "$py" -c '
import os, shutil, sys
dst = sys.argv[1]
for rel in sys.stdin.buffer.read().decode().split("\0"):
    if rel and os.path.isfile(rel):  # skips files deleted but still in the index
        os.makedirs(os.path.join(dst, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(rel, os.path.join(dst, rel))
' "$work/src")

"$py" -m venv "$work/venv"
export PATH="$work/venv/bin:$PATH" LATBENCH_HOME="$work/home"
unset PYTHONPATH VIRTUAL_ENV_PROMPT
echo "first_command: fresh venv $work/venv, LATBENCH_HOME=$LATBENCH_HOME"
echo "first_command: \$ $cmd"
status=0
(cd "$work/src" && bash -c "$cmd") || status=$?
if [[ $status -ne 0 ]]; then
    echo "first_command: FAILED: the README's first command exited $status" >&2
    exit 1
fi
(cd "$work" && python - "$key" <<'PY'
import sys
import latbench
df = latbench.load(sys.argv[1])
ok = int((df["status"] == "ok").sum())
assert ok > 0, f"{sys.argv[1]} loaded but holds no ok row"
print(f"first_command: latbench.load({sys.argv[1]!r}): {len(df)} rows, {ok} ok")
PY
) || { echo "first_command: FAILED: $key does not load after the command" >&2; exit 1; }
echo "first_command: OK"
