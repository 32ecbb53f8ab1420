#!/usr/bin/env bash
# Installs what benchmarks/analytics_tasks.py needs, once:
#   1. EasyOCR and its offline English weights into the current Python (the codec's
#      environment, $PYTHON or python), keeping its torch, torchvision and numpy as they are;
#   2. MediaPipe 0.10.14 in its own venv, benchmarks/.venv-tasks (why: mediapipe_worker.py);
#   3. the evaluation photos (task_photos.py --fetch: opencv-doc and insightface's source).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python}"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$python" -m pip freeze | grep -i -E '^(torch|torchvision|numpy)==' > "$constraints" || true
echo "[install_tasks] EasyOCR into $("$python" -c 'import sys; print(sys.prefix)') (keeping: $(tr '\n' ' ' < "$constraints"))"
"$python" -m pip install -r "$here/requirements-tasks.txt" -c "$constraints"
echo "[install_tasks] MediaPipe into $here/.venv-tasks"
"$python" -m venv "$here/.venv-tasks"
"$here/.venv-tasks/bin/python" -m pip install -r "$here/requirements-mediapipe.txt"
(cd "$here/.." && "$python" -m benchmarks.task_photos --fetch)
