#!/usr/bin/env bash
# The front door: `./run.sh demo` runs the main job, `./run.sh test` the tests.
# Creates .venv with $MEETSYNC_PYTHON (a command or a path; default python3) and installs the
# project (with its test tools) on first use; rebuilds .venv when it was made with another Python.
set -euo pipefail
# The CLI resolves relative paths (MEETSYNC_DB, ...) against the caller's directory, not ours.
export MEETSYNC_CALLER_DIR="$PWD"
cd "$(dirname "$0")"

say() { echo "run.sh: $*" >&2; }

# An empty or unknown command gets the usage before anything is installed. The list is the
# CLI's commands (tests/packaging/test_run_sh.py keeps them equal); -* are meetsync's options.
cmd="${1:-}"
case "$cmd" in
  test|lint|serve|worker|dev|demo|show|changes|stats|reconcile|backfill|dead-letters|backup|migrate|config|endpoints|subscribers|-*)
    shift
    ;;
  *)
    echo "usage: ./run.sh demo|test|lint|dev|<any meetsync command> [args...]" \
         "(./run.sh --help lists the commands)" >&2
    exit 2
    ;;
esac

python="${MEETSYNC_PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  say "no '$python' found: install Python 3.11, 3.12 or 3.13, or set MEETSYNC_PYTHON=python3.X (or its path)"
  exit 2
fi
identify='import sys; print(sys.version.split()[0], sys.base_prefix)'
want="$("$python" -c "$identify")"
version="${want%% *}"
minor="$(echo "$version" | cut -d. -f2)"
if [ "${version%%.*}" != 3 ] || [ "$minor" -lt 11 ]; then
  say "Python $version ($python) is too old: meetsync needs 3.11, 3.12 or 3.13 (set MEETSYNC_PYTHON)"
  exit 2
elif [ "$minor" -gt 13 ]; then
  say "Python $version is newer than meetsync supports (3.11-3.13): there is no embedded Redis" \
      "wheel for it, so put redis-server or valkey-server on PATH (dev also takes REDIS_URL)"
fi

venv=.venv
stamp="$venv/.installed"
have=""
if [ -x "$venv/bin/python" ]; then
  have="$("$venv/bin/python" -c "$identify" 2>/dev/null || true)"
fi
if [ "$have" != "$want" ]; then
  if [ -e "$venv" ]; then
    say "$venv was built with Python ${have%% *} (${have#* }); rebuilding it with $version ($python)"
    rm -rf "$venv"
  fi
  "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing meetsync and its test tools into $venv with Python $version" \
      "(40-50 s the first time; later runs skip this)"
  SECONDS=0
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
  touch "$stamp"
  say "installed in ${SECONDS} s"
fi

case "$cmd" in
  test)
    # Parallel unless told (-n N, --numprocesses, -p no:xdist): pytest-xdist workers, each with
    # its own Redis and PostgreSQL (tests/conftest.py). One worker more than the CPUs: a worker
    # often waits (on servers, child processes, crons), but each also starts its own servers
    # (on 2 cores: 3 workers 6 min 3 s, 4 workers 6 min 25 s). MEETSYNC_TEST_WORKERS overrides
    # it (0: no workers). worksteal: an idle worker takes tests queued on a busy one, so a few
    # minute-long tests do not leave the others idle at the end.
    parallel=(-n "${MEETSYNC_TEST_WORKERS:-$(($(nproc 2>/dev/null || echo 1) + 1))}"
              --dist worksteal)
    for arg in "$@"; do
      case "$arg" in -n*|--numprocesses*|no:xdist) parallel=() ;; esac
    done
    exec "$venv/bin/pytest" "${parallel[@]}" "$@"
    ;;
  lint)
    "$venv/bin/ruff" check .
    exec "$venv/bin/mypy"
    ;;
  *)
    exec "$venv/bin/meetsync" "$cmd" "$@"
    ;;
esac
