"""Training metrics through dvclive and a tqdm bar; only the main rank writes anything.

dvclive writes `<dir>/metrics.json` (latest values + step: `dvc metrics show/diff`, `dvc exp show`) and one
`<dir>/plots/metrics/<name>.tsv` per metric (`dvc plots show`). It does not write dvc.yaml (the project's own
dvc.yaml declares these files) nor save DVC experiments itself (`dvc exp run` does that).

Throughput (seconds per step, samples/s) is not a dvclive metric: it changes on every run and machine, and the
logs are committed DVC outputs compared across experiments. It goes to `<dir>/timing.tsv` (git-ignored).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)
TIMING = "timing.tsv"


class Monitor:
    """Per-step bar + windowed metrics to dvclive. `start_step` > 0 continues logs of an interrupted run."""

    def __init__(self, live_dir: Path, name: str, start_step: int, total_steps: int, enabled: bool):
        self.enabled = enabled
        self.live = None
        self.bar = tqdm(total=total_steps, initial=start_step, desc=f"train {name}", disable=not enabled,
                        dynamic_ncols=True, mininterval=1.0, unit="step")
        self.timing_path = Path(live_dir) / TIMING
        if enabled:
            self.live = open_live(Path(live_dir), start_step)
            if start_step == 0:
                self.timing_path.unlink(missing_ok=True)

    def step(self, loss: float) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)

    def log(self, step: int, metrics: dict[str, float], summary: dict[str, float] | None = None) -> None:
        """Write one row per metric at `step` (plots) and refresh metrics.json; `summary` goes to json only."""
        if self.live is None:
            return
        self.live.step = step
        for name, value in metrics.items():
            self.live.log_metric(name, float(value))
        for name, value in (summary or {}).items():
            self.live.log_metric(name, float(value), plot=False)
        self.live.make_summary()

    def timing(self, step: int, row: dict[str, float]) -> None:
        """Append one row of throughput figures at `step` to timing.tsv (a log beside the metrics, not one)."""
        if self.live is None:
            return
        new = not self.timing_path.is_file()
        with self.timing_path.open("a") as file:
            if new:
                file.write("\t".join(["step", *row]) + "\n")
            file.write("\t".join([str(step), *(f"{float(v):.6g}" for v in row.values())]) + "\n")

    def note(self, message: str) -> None:
        if self.enabled:
            self.bar.write(message)

    def close(self) -> None:
        self.bar.close()
        if self.live is not None:
            self.live.end()


def open_live(live_dir: Path, start_step: int):
    """A dvclive logger; a fresh run clears old logs, a resumed one keeps rows up to its checkpoint step."""
    from dvclive import Live

    resuming = start_step > 0
    if resuming:
        drop_torn_summary(live_dir)
        trim_history(live_dir, start_step)
    live = Live(dir=str(live_dir), resume=resuming, save_dvc_exp=False, dvcyaml=False, report=None)
    return live


def drop_torn_summary(live_dir: Path) -> None:
    """A run killed (e.g. by `scancel`) while dvclive rewrote metrics.json leaves it empty or cut short, and dvclive
    cannot resume from that: remove it; the resumed run writes it again at its next log."""
    path = live_dir / "metrics.json"
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except ValueError:
        log.warning("%s is incomplete (its run was killed while writing it): rewritten from the resumed run", path)
        path.unlink()


def trim_history(live_dir: Path, last_step: int) -> None:
    """Drop metric rows logged after `last_step` by a run that was killed after its last checkpoint, and a last row
    cut short by that kill."""
    for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        rows = list(csv.DictReader(tsv.open(newline=""), delimiter="\t"))
        kept = [row for row in rows if all(row.values()) and None not in row and int(row["step"]) <= last_step]
        if len(kept) == len(rows):
            continue
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0].keys()), delimiter="\t", lineterminator=os.linesep)
        writer.writeheader()
        writer.writerows(kept)
        tmp = tsv.with_suffix(".tsv.tmp")
        tmp.write_text(buffer.getvalue())
        os.replace(tmp, tsv)
