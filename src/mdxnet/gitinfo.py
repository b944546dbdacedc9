"""Which code ran: the git commit of the checkout holding this package, and whether its code differs from it.

Kept apart from the modules that shape results (checkpoint, models, training, ...), which are DVC and Snakemake
dependencies: a change to how provenance is read must not retrain or rescore anything.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path


def _git(*args: str) -> str | None:
    """Output of a git command run in the checkout holding this package; None outside a git checkout."""
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


@functools.cache
def git_commit() -> str:
    """The commit of the code that is running, or 'unknown' outside a git checkout."""
    return _git("rev-parse", "HEAD") or "unknown"


# What the pipeline itself writes into tracked files (the results, the training logs, DVC's lock): a run
# regenerating them does not make the code that ran differ from its commit.
PIPELINE_OUTPUTS = ("results", "dvclive", "dvc.lock")


def git_dirty() -> bool | None:
    """Whether tracked files other than the pipeline's own outputs differ from that commit (None outside a git
    checkout)."""
    excluded = [f":(top,exclude){path}" for path in PIPELINE_OUTPUTS]
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", *excluded)
    return bool(status) if status is not None else None
