"""`mdxnet evaluate`: the scoring steps of the workflow (track, separate, mix, blend, estimates, aggregate)."""

from __future__ import annotations

import logging
from pathlib import Path

from mdxnet.errors import UserError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    evaluate = subparsers.add_parser("evaluate", help="score separations with museval (SiSEC2018 BSS Eval v4)")
    commands = evaluate.add_subparsers(dest="evaluate_command", metavar="STEP", required=True)
    _register_track(commands)
    _register_separate(commands)
    _register_mix(commands)
    _register_blend(commands)
    _register_demucs(commands)
    _register_estimates(commands)
    _register_aggregate(commands)


def _register_track(commands) -> None:
    cmd = commands.add_parser("track", help="score one track (one job per track) -> museval per-track JSON")
    cmd.add_argument("track", help="a MUSDB18-HQ track folder or a MUSDB .stem.mp4 file")
    cmd.add_argument("--estimator", choices=["model", "mixture", "irm"], default="model",
                     help="model: trained separators; mixture: lower bound; irm: ideal ratio mask oracle")
    cmd.add_argument("--models", help="models folder (<source>.pt, mixer.pt); needed by --estimator model")
    cmd.add_argument("--no-mixer", action="store_true", help="score the separators alone, without the Mixer")
    cmd.add_argument("--device", help="torch device for the model (default: params separate.device)")
    cmd.add_argument("--estimates", help="score this folder (<source>.wav, the estimator's stored estimates of "
                     "this track: `mdxnet evaluate separate` / `mix`) instead of computing the estimates")
    cmd.add_argument("--cross-check", action="store_true",
                     help="also score with museval and record the largest per-frame difference (evaluate.backend "
                          "fast: one track per run)")
    cmd.add_argument("-o", "--out", required=True, help="output JSON (museval per-track format)")
    cmd.set_defaults(func=run_track)


def _register_separate(commands) -> None:
    cmd = commands.add_parser("separate", help="the four separators (no Mixer) on one test track -> its "
                              "estimates folder (float32 wav), scored as run no-mixer and fed to the Mixers")
    cmd.add_argument("track", help="a MUSDB18-HQ track folder or a MUSDB .stem.mp4 file")
    cmd.add_argument("--models", required=True, help="models folder (<source>.pt)")
    cmd.add_argument("--device", help="torch device (default: params separate.device)")
    cmd.add_argument("-o", "--out", required=True, help="output folder: <out>/<source>.wav")
    cmd.set_defaults(func=run_separate)


def _register_mix(commands) -> None:
    cmd = commands.add_parser("mix", help="a Mixer over one track's stored separator estimates (no separator "
                              "runs again) -> its estimates folder")
    cmd.add_argument("track", help="the track the estimates belong to (its mixture is the Mixer's fifth input)")
    cmd.add_argument("separated", help="folder of the separators' estimates (`mdxnet evaluate separate`)")
    cmd.add_argument("--mixer", required=True, help="Mixer checkpoint (e.g. models/mixer.pt)")
    cmd.add_argument("--kind", choices=["linear", "conv"], help="the Mixer's kind (default: params mixer.kind); "
                     "its other settings come from params mixer")
    cmd.add_argument("--device", help="torch device (default: params separate.device)")
    cmd.add_argument("-o", "--out", required=True, help="output folder: <out>/<source>.wav")
    cmd.set_defaults(func=run_mix)


def _register_blend(commands) -> None:
    cmd = commands.add_parser("blend", help="blend one track's Mixer (or separator) estimates with a second "
                              "system's by params blend.weights and score the blend -> museval per-track JSON")
    cmd.add_argument("track", help="a MUSDB18-HQ track folder or a MUSDB .stem.mp4 file")
    cmd.add_argument("--ours", required=True, help="this run's Mixer estimates of the track (<source>.wav), or "
                     "its separators' with --ours-run no-mixer")
    cmd.add_argument("--ours-run", choices=["mixer", "no-mixer"], default="mixer",
                     help="which of this run's outputs --ours holds (default: mixer)")
    cmd.add_argument("--second", required=True, help="the second system's estimates of the track (<source>.wav)")
    cmd.add_argument("--name", required=True, help="the second system's name (a key of params blend.second)")
    cmd.add_argument("--cross-check", action="store_true", help="as for `mdxnet evaluate track`")
    cmd.add_argument("-o", "--out", required=True, help="output JSON (museval per-track format)")
    cmd.set_defaults(func=run_blend)


def _register_demucs(commands) -> None:
    fetch = commands.add_parser("demucs-model", help="download the Demucs model of params blend.demucs (url, "
                                "sha256 prefix checked) -> its file")
    fetch.add_argument("-o", "--out", required=True, help="the model file (e.g. resources/demucs/<file of url>)")
    fetch.set_defaults(func=run_demucs_model)
    cmd = commands.add_parser("demucs", help="Demucs v2 as params blend.demucs says on one track -> its estimates "
                              "folder (float32 wav), a second system of the blend runs")
    cmd.add_argument("track", help="a MUSDB18-HQ track folder or a MUSDB .stem.mp4 file")
    cmd.add_argument("--model", required=True, help="the model file (`mdxnet evaluate demucs-model`)")
    cmd.add_argument("-o", "--out", required=True, help="output folder: <out>/<source>.wav")
    cmd.set_defaults(func=run_demucs)


def _register_estimates(commands) -> None:
    cmd = commands.add_parser("estimates", help="score a folder of estimates (musdb layout) against references")
    cmd.add_argument("estimates", help="estimates folder: <dir>/test/<track>/{vocals,drums,bass,other}.wav")
    cmd.add_argument("--references", help="dataset root holding test/<track>/ (default: params data.root)")
    cmd.add_argument("--track", action="append", help="only this track (repeatable)")
    cmd.add_argument("-o", "--out", required=True, help="output folder: <out>/test/<track>.json")
    cmd.set_defaults(func=run_estimates)


def _register_aggregate(commands) -> None:
    cmd = commands.add_parser("aggregate", help="median over frames, then over tracks (SiSEC2018)")
    cmd.add_argument("scores", nargs="+", help="per-track JSON files (read exactly), or folders: a folder with a "
                     "summary.json gives the files that summary read, any other its test/**/*.json or *.json")
    cmd.add_argument("-o", "--out", required=True, help="summary JSON")
    cmd.set_defaults(func=run_aggregate)


def run_track(args) -> int:
    from mdxnet.atomic import write_json_atomic
    from mdxnet.evaluation.scoring import score_track

    params = args.params
    document = score_track(args.track, args.estimator, params, args.models, not args.no_mixer, args.device,
                           estimates_dir=args.estimates, cross_check=args.cross_check)
    write_json_atomic(args.out, document)
    _log_medians(document, args.out)
    return 0


def run_separate(args) -> int:
    from mdxnet.evaluation.separated import separate_to_folder

    separate_to_folder(args.track, args.params, args.models, args.out, args.device)
    return 0


def run_mix(args) -> int:
    from mdxnet.evaluation.separated import mix_folder

    mix_folder(args.track, args.separated, args.params, args.mixer, args.kind or args.params.mixer.kind, args.out,
               args.device)
    return 0


def run_blend(args) -> int:
    from mdxnet.atomic import write_json_atomic
    from mdxnet.evaluation.blend import blend_track, describe
    from mdxnet.evaluation.scoring import scored_document

    params = args.params
    weights = dict(params.blend.weights)
    track, estimates = blend_track(args.track, args.ours, args.second, args.name, weights, params.sources,
                                   params.sample_rate, args.ours_run)
    metadata = {"estimator": "blend", "blend": {"ours": str(args.ours), "ours_run": args.ours_run,
                                                "second": str(args.second), "second_name": args.name,
                                                "weights": weights,
                                                "label": describe(args.name, weights, params.sources,
                                                                  args.ours_run)}}
    document = scored_document(args.track, track, estimates, params, metadata, args.cross_check)
    write_json_atomic(args.out, document)
    _log_medians(document, args.out)
    return 0


def run_demucs_model(args) -> int:
    from mdxnet.inference.demucs import fetch_model

    settings = args.params.blend.demucs
    print(fetch_model(settings.url, settings.sha256, args.out))
    return 0


def run_demucs(args) -> int:
    from mdxnet.evaluation.demucs_estimates import demucs_to_folder

    demucs_to_folder(args.track, args.params, args.model, args.out)
    return 0


def _log_medians(document: dict, out) -> None:
    from mdxnet.evaluation.aggregate import track_medians

    medians = track_medians(document)
    text = "  ".join(f"{t} {m['SDR']:.2f}" for t, m in medians.items())
    log.info("%s: median SDR %s -> %s", document.get("mdxnet", {}).get("track", "?"), text, out)


def run_estimates(args) -> int:
    """Score every estimates track (or the --track ones); what cannot be scored is refused before any scoring,
    except reference tracks without estimates when no --track is given (a partial set is scored, with a warning)."""
    from mdxnet.atomic import write_json_atomic
    from mdxnet.evaluation.estimates import match_estimates, score_matched

    params = args.params
    match = match_estimates(args.estimates, args.references or params.data.root, params.sources, args.track)
    refused = [p for p in match.problems if args.track or p["kind"] != "missing_track"]
    if refused:
        raise UserError("cannot score the estimates: " + "; ".join(p["message"] for p in refused))
    for p in match.problems:
        log.warning("%s: not scored", p["message"])
    unscored = []
    for name, document, problems in score_matched(match, params):
        for p in problems:
            log.warning("%s", p["message"])
        if document is None:
            unscored.append(name)
            continue
        out = Path(args.out) / "test" / f"{name}.json"
        write_json_atomic(out, document)
        _log_medians(document, out)
    if unscored:  # the others are written: each track's scores stand on their own
        raise UserError(f"not scored (see the warnings above): {', '.join(unscored)}")
    return 0


def run_aggregate(args) -> int:
    from mdxnet.atomic import write_json_atomic
    from mdxnet.evaluation.aggregate import aggregate

    summary = aggregate(args.scores, args.out)
    write_json_atomic(args.out, summary)
    check = summary["crosscheck"]
    if check:
        print(f"museval cross-check ({check['track']}): {check['backend']} differs by at most "
              f"{check['max_abs_diff_db']:.2g} dB per frame (tolerance {check['tolerance_db']:g} dB)")
    for target, metrics in summary["summary"].items():
        print(f"{target:<10} " + "  ".join(f"{m} {v:7.3f}" for m, v in metrics.items()))
    print(f"({summary['tracks']} tracks) -> {args.out}")
    return 0
