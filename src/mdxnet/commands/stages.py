"""`mdxnet stages --check | --write | --check-lock`: dvc.yaml's and published/dvc.yaml's `src/` code deps and
`params:` lists, as mdxnet.stages derives them (the one declaration). --write rewrites just those lines; every other
line of the files (commands, data deps, outputs, comments) stays as it is. --check-lock: dvc.lock against the tree
(mdxnet.lockcheck)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

FIX = "mdxnet stages --write"


def register(subparsers) -> None:
    cmd = subparsers.add_parser("stages", help="check or write the DVC stages' code deps and params lists "
                                               "(declared in mdxnet.stages)")
    what = cmd.add_mutually_exclusive_group(required=True)
    what.add_argument("--check", action="store_true", help="exit 1, naming each stale stage, unless current")
    what.add_argument("--write", action="store_true", help="rewrite the lists in place")
    what.add_argument("--check-lock", action="store_true",
                      help="exit 1, naming each stage whose dvc.lock entry records other code or params than the "
                           "tree holds (a commit changed a stage without regenerating its outputs and lock)")
    cmd.add_argument("--root", type=Path, default=Path("."),
                     help="project root holding dvc.yaml, published/dvc.yaml and src/mdxnet (default: .)")
    cmd.set_defaults(func=run_stages)


def run_stages(args) -> int:
    from mdxnet.stages import PIPELINES

    if args.check_lock:
        return run_check_lock(args.root)
    problems = []
    for pipeline in PIPELINES:
        path = args.root / pipeline
        text = path.read_text()
        if args.write:
            new = rewrite(text, pipeline, args.root)
            if new != text:
                path.write_text(new)
                print(f"{pipeline}: lists rewritten")
        problems += [f"{pipeline}: {problem}" for problem in stale(path.read_text(), pipeline, args.root)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"run `{FIX}` (after editing src/mdxnet/stages.py where a stage itself changed)", file=sys.stderr)
        return 1
    return 0


def run_check_lock(root: Path) -> int:
    from mdxnet.lockcheck import FIX, lock_problems

    problems = lock_problems(root)
    for problem in problems:
        print(f"dvc.lock: {problem}", file=sys.stderr)
    if problems:
        print(FIX, file=sys.stderr)
        return 1
    print("dvc.lock records the code and params of the tree")
    return 0


def derived(pipeline: str, name: str, root: Path) -> tuple[list[str], list]:
    """The stage's code deps and its `params:` entries as dvc.yaml holds them."""
    from mdxnet.stages import code_deps, declared_keys, stage

    keys = declared_keys(stage(pipeline, name))
    return code_deps(pipeline, name, root), [{"params.yaml": None}] if keys is None else keys


def stale(text: str, pipeline: str, root: Path) -> list[str]:
    """What in the file differs from the declaration, one line per stage."""
    import yaml

    from mdxnet.stages import STAGES

    written = yaml.safe_load(text)["stages"]
    problems = [f"stage {name} is not declared in mdxnet.stages" for name in written if name not in STAGES[pipeline]]
    problems += [f"stage {name} of mdxnet.stages is missing" for name in STAGES[pipeline] if name not in written]
    for name in [name for name in written if name in STAGES[pipeline]]:
        definition = written[name].get("do", written[name])
        code, params = derived(pipeline, name, root)
        listed = [dep for dep in definition.get("deps", []) if isinstance(dep, str) and dep.startswith("src/")]
        if listed != code:
            problems.append(f"stage {name}: code deps {difference(listed, code)}")
        if definition.get("params") != params:
            problems.append(f"stage {name}: params {difference(definition.get('params') or [], params)}")
    return problems


def difference(written: list, wanted: list) -> str:
    added = [entry for entry in wanted if entry not in written]
    dropped = [entry for entry in written if entry not in wanted]
    if not added and not dropped:
        return "listed in another order"
    return f"lack {added}" * bool(added) + ", " * bool(added and dropped) + f"list {dropped} too" * bool(dropped)


# ---- the text rewrite ------------------------------------------------------------------------------------------
STAGE = re.compile(r"  ([\w@-]+):\s*$")
LIST_KEY = re.compile(r"(\s+)(deps|params):\s*(#.*)?$")


def rewrite(text: str, pipeline: str, root: Path) -> str:
    """The file with each declared stage's `src/` deps and `params:` entries replaced by the derived ones."""
    from mdxnet.stages import STAGES

    lines = text.splitlines(keepends=True)
    out, name, in_stages, i = [], None, False, 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"[^\s#]", line):  # a top-level key
            in_stages, name = line.startswith("stages:"), None
        elif in_stages and STAGE.match(line):
            name = STAGE.match(line).group(1)
        elif name in STAGES[pipeline] and LIST_KEY.match(line):
            end = list_end(lines, i + 1)
            out += [line, *replaced(lines[i + 1:end], LIST_KEY.match(line).group(2), pipeline, name, root)]
            i = end
            continue
        out.append(line)
        i += 1
    return "".join(out)


def list_end(lines: list[str], start: int) -> int:
    """The line after a YAML block list starting at `start` (its items, their comments and continuations)."""
    indent = indent_of(lines[start]) if start < len(lines) else 0
    end = start
    while end < len(lines) and lines[end].strip() and indent_of(lines[end]) >= indent:
        end += 1
    return end


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def replaced(block: list[str], key: str, pipeline: str, name: str, root: Path) -> list[str]:
    code, params = derived(pipeline, name, root)
    pad = " " * (indent_of(block[0]) if block else 6)
    if key == "params":
        return [f"{pad}- {'params.yaml:' if isinstance(entry, dict) else entry}\n" for entry in params]
    is_code = [line.strip().startswith("- src/") for line in block]
    at = is_code.index(True) if True in is_code else 0
    kept = [line for line, code_line in zip(block, is_code, strict=True) if not code_line]
    return [*kept[:at], *(f"{pad}- {path}\n" for path in code), *kept[at:]]
