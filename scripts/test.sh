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

echo "== unit, property, browser and notebook tests"
# The browser tests open this pack's offline HTML instead of building a second pack; loadgroup
# keeps the tests that share a session fixture (the lab, the learner packs) in one worker.
MLOPS_KIT_BROWSER_PACK="$PWD/build/evidence-ci" .venv/bin/python -m pytest -q -n 2 --dist loadgroup tests
.venv/bin/python -m pytest -q --nbval-lax --nbval-current-env notebooks
