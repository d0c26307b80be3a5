#!/usr/bin/env bash
# Set up (first time only) and run the workbench on the embedded TTS server. Arguments go to `workbench`.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/workbench "$@"
