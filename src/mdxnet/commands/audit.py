"""`mdxnet audit`: score someone's estimates and check their claimed numbers (mdxnet.evaluation.audit)."""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    cmd = subparsers.add_parser("audit", help="score someone's estimates and check their claimed numbers")
    cmd.add_argument("estimates", help="estimates folder: <dir>/test/<track>/{vocals,drums,bass,other}.wav")
    cmd.add_argument("--references", help="dataset root with test/<track>/ (default: params data.root)")
    cmd.add_argument("--claimed", help="their per-track JSON folder, summary JSON, or table (.csv/.md/.json)")
    cmd.add_argument("--claimed-row", help="row of a claimed table to compare with (when it has several)")
    cmd.add_argument("--tolerance", type=float, help="dB difference that flags (default: params evaluate.audit_tolerance); "
                     "each claimed median is also placed against the bootstrap interval of ours (evaluate.bootstrap)")
    cmd.add_argument("--train-root", help="their training data root (train/<track>/) to check for overlap")
    cmd.add_argument("-o", "--out", help="audit report JSON (default: <estimates>/audit.json)")
    cmd.set_defaults(func=run_audit)


def run_audit(args) -> int:
    from mdxnet.atomic import write_json_atomic
    from mdxnet.evaluation.audit import format_audit, run_audit_checks

    params = args.params
    tolerance = args.tolerance if args.tolerance is not None else params.evaluate.audit_tolerance
    report = run_audit_checks(
        args.estimates,
        args.references or params.data.root,
        params,
        claimed=args.claimed,
        claimed_row=args.claimed_row,
        tolerance=tolerance,
        train_root=args.train_root,
    )
    out = Path(args.out) if args.out else Path(args.estimates) / "audit.json"
    write_json_atomic(out, report)
    print(format_audit(report))
    print(f"audit report -> {out}", file=sys.stderr)
    return 1 if report["flags"] else 0
