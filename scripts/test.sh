#!/usr/bin/env bash
# Set up everything (a .venv, torch, tracklight[dev]) and run the test suite: bash scripts/test.sh [pytest options]
# Exits non-zero when a test fails or when no test is collected (pytest's exit code 5).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
python -m pytest "$@"
