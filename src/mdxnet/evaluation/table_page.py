"""results/table.md as a standalone HTML page, for the HTML report (`snakemake --report`).

The report shows HTML results in place but offers other text files only as downloads, so the results table
gets an HTML rendering of the same markdown: nothing is recomputed, whatever `mdxnet report` wrote is what the page
shows. Raw HTML in the markdown is escaped (song names come from file names); number cells are right-aligned.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from mdxnet.atomic import write_text_atomic
from mdxnet.errors import UserError

# a cell that starts with a number (`7.41`, `-5.22 inside`, `2.36 [1.9, 2.8]`) is right-aligned and kept on
# one line; so is a one-word cell (`ismir2021-mdx-workshop` would otherwise break at its hyphens)
NUMBER_CELL = re.compile(r"^[-+\u2212]?(\d|\.\d)")

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px; color: #1f2328;
       margin: 1.2em 1.5em; line-height: 1.45; }
h1 { font-size: 1.5em; margin-top: 0; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
blockquote { margin: 1em 0; padding: .4em 1em; border-left: 4px solid #cf222e; background: #fff5f5; }
.table-scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: 3px 6px; vertical-align: top; }
th { background: #f3f4f6; position: sticky; top: 0; white-space: nowrap; }
td:first-child { min-width: 16em; }
td.num { text-align: right; white-space: nowrap; }
td.word { white-space: nowrap; }
tbody tr:nth-child(even) { background: #f9fafb; }
tbody tr:hover { background: #eef4ff; }
code { font-size: 90%; background: #f3f4f6; padding: 0 .25em; border-radius: 3px; }
"""


def markdown_renderer():
    from markdown_it import MarkdownIt

    # CommonMark with GitHub-style pipe tables; html=False: raw HTML in the markdown is shown, not interpreted
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def mark_cells(tokens) -> None:
    """Class `num` on table cells that start with a number, `word` on one-word cells (see NUMBER_CELL)."""
    for index, token in enumerate(tokens):
        if token.type == "td_open" and index + 1 < len(tokens):
            content = tokens[index + 1].content.strip()
            if NUMBER_CELL.match(content):
                token.attrSet("class", "num")
            elif content and " " not in content:
                token.attrSet("class", "word")


def page_title(markdown: str, fallback: str) -> str:
    heading = re.search(r"^#\s+(.+)$", markdown, re.M)
    return heading.group(1).strip() if heading else fallback


def render_page(markdown: str, title: str) -> str:
    """A complete HTML document (styles inline, nothing fetched) showing `markdown`."""
    renderer = markdown_renderer()
    tokens = renderer.parse(markdown)
    mark_cells(tokens)
    body = renderer.renderer.render(tokens, renderer.options, {})
    # wide tables scroll sideways inside the page instead of widening it
    body = body.replace("<table>", '<div class="table-scroll"><table>').replace("</table>", "</table></div>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(page_title(markdown, title))}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}</body>\n</html>\n"
    )


def write_page(markdown_path: Path, out: Path) -> Path:
    markdown_path = Path(markdown_path)
    if not markdown_path.is_file():
        raise UserError(f"{markdown_path} does not exist: write the results table first (`mdxnet report` or "
                        "`snakemake results/table.md`)")
    return write_text_atomic(out, render_page(markdown_path.read_text(), markdown_path.name))
