#!/usr/bin/env bash
# MediaPipe in an environment of its own (it pins its own numpy, protobuf and OpenCV): the consumer that
# benchmarks/mediapipe_agreement.py checks our TFLite files with.
#     bash benchmarks/mediapipe_env.sh [FOLDER]    (default: mediapipe, beside the repository's files)
set -euo pipefail
folder="${1:-mediapipe}"
python3 -m venv "$folder"
"$folder/bin/pip" install --quiet "mediapipe>=1.2"
"$folder/bin/python" -c "import mediapipe; print('MediaPipe', mediapipe.__version__, 'in', '$folder')"
