#!/usr/bin/env bash
# The front door: `./run.sh demo` runs the main job, `./run.sh test` the tests.
# Creates .venv and installs the project (with its test tools) on first use.
set -euo pipefail
cd "$(dirname "$0")"

venv=.venv
stamp="$venv/.installed"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e ".[test]"
  touch "$stamp"
fi

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  test)
    exec "$venv/bin/pytest" "$@"
    ;;
  lint)
    "$venv/bin/ruff" check .
    exec "$venv/bin/mypy"
    ;;
  "")
    echo "usage: ./run.sh demo|dev|test|lint|<any meetsync subcommand> [args...]" >&2
    exit 2
    ;;
  *)
    exec "$venv/bin/meetsync" "$cmd" "$@"
    ;;
esac
