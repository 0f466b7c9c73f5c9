#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what the tests need, then runs pytest.
# CPU machines get the torch CPU build; a machine with torch already installed keeps its own.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check torch==2.13.0
python3 -m pip install -q --disable-pip-version-check -e ".[all]"
# Headless Chromium for the viewer's end-to-end test (skipped with a reason when unavailable).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) || echo "chromium could not be installed: the viewer browser test will skip"
fi
exec python3 -m pytest -q -p no:cacheprovider "$@" tests
