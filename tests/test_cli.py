"""The command line stays light: building the parser (every `mdxnet ...` call, `--help`, the workflow's
`mdxnet data list` at parse time) must not import torch, which costs ~1 s per call (the command
modules keep their library imports inside the run_* functions for this reason)."""

from __future__ import annotations

import subprocess
import sys

PROBE = ("import sys; from mdxnet.cli import build_parser; build_parser(); "
         "heavy = sorted(m for m in ('torch', 'onnxruntime', 'museval', 'matplotlib') if m in sys.modules); "
         "print(','.join(heavy))")


def test_building_the_parser_imports_no_heavy_library():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"mdxnet's parser imports {done.stdout.strip()}"
