"""Training curves of one model as a PNG, drawn from the dvclive logs its training left (see monitor.py).

Left panel: the training loss (mean over each logging window, `loss.tsv`). Right panel: the validation SDR at
each validation (`valid_sdr.tsv`, the score that picks the best checkpoint), with the best step marked; the
Mixer's log adds the SDR of the four separators alone (`valid_sdr_separators.tsv`, the score the Mixer has to
beat) and its per-source scores (`valid_sdr_<source>.tsv`). The HTML report (`snakemake --report`) shows one
such figure per model.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from mdxnet.atomic import write_atomic
from mdxnet.errors import UserError

SELECTION_METRIC = "valid_sdr"
SEPARATORS_METRIC = "valid_sdr_separators"


def metrics_folder(live_dir: Path) -> Path:
    return Path(live_dir) / "plots" / "metrics"


def read_metric(tsv: Path) -> tuple[list[int], list[float]]:
    """(steps, values) of one dvclive metric file: a `step` column and one named after the metric."""
    with tsv.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    name = tsv.stem
    try:
        return [int(row["step"]) for row in rows], [float(row[name]) for row in rows]
    except (KeyError, ValueError) as err:
        raise UserError(f"{tsv} is not a dvclive metric file (columns `step` and `{name}`): {err}") from None


def read_curves(live_dir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """The loss and every validation SDR metric of one training log, by metric name."""
    folder = metrics_folder(live_dir)
    loss = folder / "loss.tsv"
    if not loss.is_file():
        raise UserError(f"{live_dir} holds no training log ({loss} is missing): train the model first (e.g. "
                        f"`snakemake models/{Path(live_dir).name}.pt`), or pass the folder its training logged "
                        "to (`mdxnet train ... --live-dir`)")
    curves = {"loss": read_metric(loss)}
    for tsv in sorted(folder.glob(f"{SELECTION_METRIC}*.tsv")):
        curves[tsv.stem] = read_metric(tsv)
    return curves


def best_point(live_dir: Path, curves: dict) -> tuple[int, float] | None:
    """The checkpoint training kept: metrics.json's best step and score (the log's maximum if it has none)."""
    summary = Path(live_dir) / "metrics.json"
    if summary.is_file():
        values = json.loads(summary.read_text())
        if values.get("best_step") is not None and values.get("best_valid_sdr") is not None:
            return int(values["best_step"]), float(values["best_valid_sdr"])
    if SELECTION_METRIC not in curves or not curves[SELECTION_METRIC][0]:
        return None
    steps, values = curves[SELECTION_METRIC]
    index = max(range(len(values)), key=lambda i: values[i])
    return steps[index], values[index]


def validation_label(metric: str) -> str:
    if metric == SELECTION_METRIC:
        return "validation SDR (selects the checkpoint)"
    if metric == SEPARATORS_METRIC:
        return "separators alone (no Mixer)"
    return metric.removeprefix(f"{SELECTION_METRIC}_")


def point_markers(steps: list[int]) -> dict:
    """Dots on the points of a short log (a smoke run's single point is otherwise invisible)."""
    return {"marker": "o", "markersize": 3} if len(steps) <= 40 else {}


def integer_steps(ax, steps: list[int]) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if steps and min(steps) == max(steps):  # one logged step: centre it, not on 1.9..2.1
        ax.set_xlim(steps[0] - 1, steps[0] + 1)


def draw_loss(ax, steps: list[int], values: list[float]) -> None:
    ax.plot(steps, values, color="tab:blue", linewidth=1.2, **point_markers(steps))
    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 10:
        ax.set_yscale("log")  # a full run's loss falls by orders of magnitude
    ax.set_title("training loss (mean per logging window)", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3, which="both")


def draw_validation(ax, curves: dict, best: tuple[int, float] | None) -> None:
    # the selection metric first, then the Mixer's reference (separators alone), then per-source scores
    order = {SELECTION_METRIC: 0, SEPARATORS_METRIC: 1}
    metrics = sorted((name for name in curves if name.startswith(SELECTION_METRIC)),
                     key=lambda name: (order.get(name, 2), name))
    ax.set_title("validation SDR", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("SDR (dB)")
    ax.grid(alpha=0.3)
    if not metrics:
        ax.text(0.5, 0.5, "no validation logged\n(no validation tracks)", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
        return
    for name in metrics:
        steps, values = curves[name]
        if name == SELECTION_METRIC:
            style = {"color": "black", "linewidth": 2.0, "zorder": 3}
        elif name == SEPARATORS_METRIC:
            style = {"color": "0.45", "linewidth": 1.4, "linestyle": "--"}
        else:
            style = {"linewidth": 0.9, "alpha": 0.8}
        style = {**point_markers(steps), **style}
        ax.plot(steps, values, label=validation_label(name), **style)
    if best is not None and not math.isnan(best[1]):
        ax.plot([best[0]], [best[1]], marker="*", markersize=14, color="tab:red", linestyle="none", zorder=4,
                label=f"best: {best[1]:.2f} dB at step {best[0]}")
    # beside the panel, not over it: the Mixer's seven entries would hide the curves they name
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def write_curves(live_dir: Path, out: Path, name: str | None = None) -> Path:
    """Render the training curves logged in `live_dir` into the PNG `out` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    live_dir = Path(live_dir)
    curves = read_curves(live_dir)
    # one step axis for both panels: validations line up with the loss of the same steps
    fig, (loss_ax, valid_ax) = plt.subplots(1, 2, figsize=(12, 4.0), width_ratios=(1, 1.15), sharex=True)
    draw_loss(loss_ax, *curves["loss"])
    draw_validation(valid_ax, curves, best_point(live_dir, curves))
    valid_ax.tick_params(labelbottom=True)
    integer_steps(loss_ax, sorted({step for steps, _ in curves.values() for step in steps}))
    fig.suptitle(f"{name or live_dir.name}: training curves (logged in {live_dir})", fontsize=11)
    fig.tight_layout()
    try:
        return write_atomic(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)
