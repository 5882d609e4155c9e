#!/usr/bin/env bash
# Set up everything (a .venv, torch, tracklight[dev]) and run the demo: bash scripts/demo.sh [demo options]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
python examples/digits_demo.py "$@"
