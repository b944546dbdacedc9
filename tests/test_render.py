"""`mdxnet render`: the training-curve figures and the table page the HTML report shows."""

from __future__ import annotations

import json

import pytest

from mdxnet.cli import main
from mdxnet.errors import UserError
from mdxnet.evaluation.table_page import render_page
from mdxnet.training.curves import best_point, read_curves, write_curves


def write_log(live_dir, metrics: dict[str, list[tuple[int, float]]], summary: dict | None = None):
    """A dvclive folder as the trainer leaves it: plots/metrics/<name>.tsv (+ metrics.json)."""
    folder = live_dir / "plots" / "metrics"
    folder.mkdir(parents=True)
    for name, rows in metrics.items():
        lines = [f"step\t{name}", *(f"{step}\t{value}" for step, value in rows)]
        (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    if summary is not None:
        (live_dir / "metrics.json").write_text(json.dumps(summary))
    return live_dir


def test_curves_read_the_log_and_mark_the_kept_checkpoint(tmp_path):
    live = write_log(tmp_path / "vocals", {
        "loss": [(5, 0.04), (10, 0.03), (15, 0.02)],
        "valid_sdr": [(5, 1.0), (10, 3.0), (15, 2.0)],
        "lr": [(5, 1e-3), (10, 1e-3), (15, 1e-3)],
    })
    curves = read_curves(live)
    assert set(curves) == {"loss", "valid_sdr"}  # lr and the other logged metrics are not drawn
    assert curves["valid_sdr"] == ([5, 10, 15], [1.0, 3.0, 2.0])
    assert best_point(live, curves) == (10, 3.0)  # the log's best when metrics.json says nothing
    (live / "metrics.json").write_text('{"best_step": 15.0, "best_valid_sdr": 2.0}')
    assert best_point(live, curves) == (15, 2.0)  # what training recorded as kept wins


def test_curves_png_with_and_without_validation(tmp_path):
    mixer = write_log(tmp_path / "mixer", {
        "loss": [(2, 0.002)], "valid_sdr": [(2, 0.5)], "valid_sdr_separators": [(2, 0.1)],
        "valid_sdr_bass": [(2, 0.3)],
    }, {"best_step": 2.0, "best_valid_sdr": 0.5})
    quiet = write_log(tmp_path / "bass", {"loss": [(1, 0.5), (2, 0.4)]})
    assert main(["render", "curves", str(mixer), str(quiet), "-o", str(tmp_path / "out")]) == 0
    for name in ("mixer", "bass"):
        png = (tmp_path / "out" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_curves_of_a_model_not_trained_yet_name_the_fix(tmp_path):
    with pytest.raises(UserError, match="train the model first"):
        write_curves(tmp_path / "drums", tmp_path / "drums.png")
    assert not (tmp_path / "drums.png").exists()


def test_table_page_renders_the_markdown_table_and_escapes_html():
    markdown = ("# Results\n\n> **warning**\n\n| Method | vocals | Version |\n|---|---|---|\n"
                "| <b>x</b> & co | 7.41 [6.9, 8.0] | ismir2021-mdx-workshop |\n")
    page = render_page(markdown, "table.md")
    assert page.startswith("<!DOCTYPE html>") and "<title>Results</title>" in page
    assert "<td>&lt;b&gt;x&lt;/b&gt; &amp; co</td>" in page  # raw HTML shown as text
    assert '<td class="num">7.41 [6.9, 8.0]</td>' in page
    assert '<td class="word">ismir2021-mdx-workshop</td>' in page
    assert "<blockquote>" in page and "<strong>warning</strong>" in page
    assert "http" not in page  # nothing to fetch: the page stands alone inside the report
