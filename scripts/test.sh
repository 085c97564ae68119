#!/usr/bin/env bash
# Set up .venv (if needed) and run the whole test suite: notebook hygiene, an end-to-end evidence
# build + grade, unit, property and browser tests (Chromium + JupyterLab, and the pack's offline
# HTML), and nbval on every chapter notebook.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

# The Redis online-store tests need a real redis-server (under CI=true they fail without one).
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing: install it with 'sudo apt-get install -y redis-server' (Redis tests skip without it outside CI)" >&2
  fi
fi

# The Spark offline-engine tests need Java 17+ (under CI=true they fail without it).
if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    echo "java is missing: install it with 'sudo apt-get install -y openjdk-17-jre-headless' (Spark tests skip without it outside CI)" >&2
  fi
fi

# The browser tests (tests/browser) drive Debian's Chromium through Playwright (under CI=true they
# fail without it); never 'playwright install', which downloads a browser of its own.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: install it with 'sudo apt-get install -y chromium' (browser tests skip without it outside CI)" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"

# Hermetic Jupyter/matplotlib state for kernels started by the tests.
export IPYTHONDIR="$PWD/build/ipython" JUPYTER_CONFIG_DIR="$PWD/build/jupyter-config" \
       JUPYTER_DATA_DIR="$PWD/build/jupyter-data" MPLCONFIGDIR="$PWD/build/mpl"
mkdir -p "$IPYTHONDIR" "$JUPYTER_CONFIG_DIR" "$JUPYTER_DATA_DIR" "$MPLCONFIGDIR"

echo "== notebook hygiene"
.venv/bin/mlops-kit check-notebooks notebooks

echo "== end-to-end evidence build and grade"
rm -rf build/evidence-ci
.venv/bin/mlops-kit evidence build --out build/evidence-ci --quiz-answers key
.venv/bin/mlops-kit grade build/evidence-ci --min-score 100

# Three phases, each with the machine to itself: the unit and property tests in two workers, then
# the browser tests (one JupyterLab, one run per chapter) and the five learner packs (each built
# with two kernels at once). Run side by side on two cores they took 34 min instead of about 20.
echo "== unit and property tests"
.venv/bin/python -m pytest -q -n 2 --durations=15 tests --ignore=tests/browser \
  --ignore=tests/evidence/test_learner_worlds.py --ignore=tests/evidence/test_world_check.py
echo "== browser tests"
# They open this pack's offline HTML instead of building a second pack.
MLOPS_KIT_BROWSER_PACK="$PWD/build/evidence-ci" .venv/bin/python -m pytest -q --durations=10 tests/browser
echo "== learner worlds: six chapters built for five learner ids, and the world check"
.venv/bin/python -m pytest -q --durations=10 tests/evidence/test_learner_worlds.py tests/evidence/test_world_check.py
echo "== notebook tests"
.venv/bin/python -m pytest -q --nbval-lax --nbval-current-env notebooks
