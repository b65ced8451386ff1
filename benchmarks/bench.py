"""``mobilenet bench`` with torchvision's MobileNetV2 as the reference, on a machine whose torchvision wheel
is a CUDA build (as here): the test shim defines the two operator schemas it needs, then the CLI runs.

    python benchmarks/bench.py [any `mobilenet bench` flags]

On a machine with a CPU torchvision, ``mobilenet bench`` alone does the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.references import define_missing_ops

from mobilenet.cli import main

if __name__ == "__main__":
    define_missing_ops()
    sys.exit(main(["bench", *sys.argv[1:]]))
