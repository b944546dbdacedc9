# Evaluation: one separation per test track (kept as estimates/<run>/test/<track>/, musdb layout), each Mixer
# over it, BSS Eval v4 scores per track and run, a summary per run, the results table.

import hashlib


rule separate_track:
    """The four separators on one test track, once for every model run: their estimates are the `no-mixer`
    run's and every Mixer's input (estimates/no-mixer/test/<track>/<source>.wav, float32)."""
    input:
        report=SCORE_CHECK,
        track=lambda w: track_files(test_songs()[w.track]),
        models=[model_file(source) for source in SOURCES],
        code=code_deps("evaluate"),
    output:
        estimates=run_estimates("no-mixer", "{track}"),
    params:
        file=PARAMS_FILE,
        deps=stage_params("evaluate"),
        track=lambda w: test_songs()[w.track],
        models=lambda w, input: os.path.dirname(input.models[0]),
        out=lambda w, output: os.path.dirname(output.estimates[0]),
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/separate/{track}.log",
    benchmark:
        "benchmarks/separate/{track}.tsv"
    shell:
        "mdxnet --params {params.file} evaluate separate {params.track:q} --models {params.models:q}"
        " -o {params.out:q} > {log:q} 2>&1"


rule mix_track:
    """One Mixer over one track's stored separator estimates (no separator runs again): the estimates of the
    `mixer` (recipe's Mixer) or `mixer-conv` (deeper conv Mixer) run, reused by the blend runs."""
    input:
        report=SCORE_CHECK,
        track=lambda w: track_files(test_songs()[w.track]),
        separated=run_estimates("no-mixer", "{track}"),
        mixer=lambda w: model_file(w.mixer),
        code=code_deps("evaluate"),
    output:
        estimates=run_estimates("{mixer}", "{track}"),
    params:
        file=PARAMS_FILE,
        deps=stage_params("evaluate"),
        track=lambda w: test_songs()[w.track],
        separated=lambda w, input: os.path.dirname(input.separated[0]),
        kind=lambda w: f"--kind {MIXER_RUNS[w.mixer]}" if MIXER_RUNS[w.mixer] else "",
        mixer=lambda w: f"{MODELS}/{w.mixer}.pt",
        out=lambda w, output: os.path.dirname(output.estimates[0]),
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/mix/{mixer}/{track}.log",
    benchmark:
        "benchmarks/mix/{mixer}/{track}.tsv"
    shell:
        "mdxnet --params {params.file} evaluate mix {params.track:q} {params.separated:q} --mixer {params.mixer:q}"
        " {params.kind} -o {params.out:q} > {log:q} 2>&1"


rule evaluate_track:
    """Score one test track of a model run (from its stored estimates) or a baseline (computed here) with BSS
    Eval v4 (SiSEC2018), museval's per-track JSON."""
    input:
        report=SCORE_CHECK,
        track=lambda w: track_files(test_songs()[w.track]),
        estimates=scored_estimates,
        code=lambda w: code_deps(run_stage(w.run)),
    output:
        scores=f"{EVALUATION}/{{run}}/test/{{track}}.json",
    wildcard_constraints:
        run="|".join([*MODEL_RUNS, *BASELINE_RUNS]),
    params:
        file=PARAMS_FILE,
        deps=lambda w: stage_params(run_stage(w.run)),
        track=lambda w: test_songs()[w.track],
        estimator=estimator_args,
        crosscheck=crosscheck_flag,
    resources:
        mem_mb=evaluate_mem_mb,
        gpu=evaluate_gpus,
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/evaluate/{run}/{track}.log",
    benchmark:
        "benchmarks/evaluate/{run}/{track}.tsv"
    shell:
        "mdxnet --params {params.file} evaluate track {params.track:q} {params.estimator} {params.crosscheck}"
        " -o {output.scores:q} > {log:q} 2>&1"


rule demucs_model:
    """The Demucs model file of params blend.demucs, downloaded once (its sha256 prefix checked before it is
    moved into place)."""
    output:
        DEMUCS_MODEL,
    params:
        file=PARAMS_FILE,
        url=P.blend.demucs.url,
        sha256=P.blend.demucs.sha256,
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/demucs/model.log",
    benchmark:
        "benchmarks/demucs/model.tsv"
    shell:
        "mdxnet --params {params.file} evaluate demucs-model -o {output:q} > {log:q} 2>&1"


rule demucs_track:
    """Demucs v2 on one test track as params blend.demucs says: the second system estimates/demucs of the blend
    runs, made once per song."""
    input:
        report=SCORE_CHECK,
        track=lambda w: track_files(test_songs()[w.track]),
        model=DEMUCS_MODEL,
        code=code_deps("demucs"),
    output:
        estimates=run_estimates("demucs", "{track}"),
    params:
        file=PARAMS_FILE,
        deps=stage_params("demucs"),
        track=lambda w: test_songs()[w.track],
        out=lambda w, output: os.path.dirname(output.estimates[0]),
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/demucs/{track}.log",
    benchmark:
        "benchmarks/demucs/{track}.tsv"
    shell:
        "mdxnet --params {params.file} evaluate demucs {params.track:q} --model {input.model:q}"
        " -o {params.out:q} > {log:q} 2>&1"


rule demucs_estimates:
    """Target of the DVC `demucs` stage: Demucs v2 on every test track where blend.second names estimates/demucs
    (else nothing runs and the folder, the stage's output, stays empty)."""
    input:
        lambda w: [f for t in sorted(test_songs()) for f in run_estimates("demucs", t)] if USES_DEMUCS else [],
    localrule: True
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/demucs/estimates.log",
    shell:
        f"mkdir -p {ESTIMATES}/demucs > {{log:q}} 2>&1"


rule blend_track:
    """One test track of a blend run: this run's Mixer estimates (blend-<name>) or its separators' (blend-no-
    mixer-<name>) and a second system's, weighted per source (params blend.weights), scored like every run."""
    input:
        report=DATA_CHECK,
        track=lambda w: track_files(test_songs()[w.track]),
        ours=lambda w: run_estimates(blended_run(w.run), w.track),
        second=second_system_inputs,
        code=lambda w: code_deps("blend"),
    output:
        scores=f"{EVALUATION}/{{run}}/test/{{track}}.json",
    wildcard_constraints:
        run="|".join(BLEND_RUNS) or "no-blend-run",
    params:
        file=PARAMS_FILE,
        deps=lambda w: stage_params("blend", second_name(w.run)),
        track=lambda w: test_songs()[w.track],
        ours=lambda w, input: os.path.dirname(input.ours[0]),
        ours_run=lambda w: blended_run(w.run),
        second=lambda w, input: os.path.dirname(input.second[0]),
        name=lambda w: second_name(w.run),
        crosscheck=crosscheck_flag,
    resources:
        mem_mb=evaluate_mem_mb,
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/evaluate/{run}/{track}.log",
    benchmark:
        "benchmarks/evaluate/{run}/{track}.tsv"
    shell:
        "mdxnet --params {params.file} evaluate blend {params.track:q} --ours {params.ours:q}"
        " --ours-run {params.ours_run} --second {params.second:q} --name {params.name:q} {params.crosscheck}"
        " -o {output.scores:q} > {log:q} 2>&1"


rule aggregate:
    """One run's SiSEC2018 summary: median over frames per song, then median over songs, per source and metric."""
    input:
        scores=lambda w: evaluation_files([w.run]),
        code=lambda w: code_deps(run_stage(w.run)),
    output:
        summary=f"{EVALUATION}/{{run}}/summary.json",
    params:
        file=PARAMS_FILE,
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/aggregate/{run}.log",
    benchmark:
        "benchmarks/aggregate/{run}.tsv"
    shell:
        # exactly this run's score files: a file left in the folder by another dataset's run is not counted
        "mdxnet --params {params.file} evaluate aggregate {input.scores:q} -o {output.summary:q} > {log:q} 2>&1"


rule evaluate_models:
    """Target of the DVC `evaluate` stage: every test track separated once and scored without Mixer, with the
    recipe's Mixer and with the conv Mixer, and summaries."""
    input:
        lambda w: evaluation_files(MODEL_RUNS),
        expand(f"{EVALUATION}/{{run}}/summary.json", run=MODEL_RUNS),


rule evaluate_baselines:
    """Target of the DVC `baselines` stage: the mixture (lower bound) and IRM oracle (upper bound) scores."""
    input:
        lambda w: evaluation_files(BASELINE_RUNS),
        expand(f"{EVALUATION}/{{run}}/summary.json", run=BASELINE_RUNS),


# Training logs drawn for the HTML report: dvclive/<name>/ as `mdxnet train` writes it for each model (none for
# imported models).
TRAINED = [] if IMPORTING else [*SOURCES, *MIXER_RUNS]


rule report:
    """The results table (paper rows + this run's), box plots, the training curves of every model, and the
    provenance of the numbers; the items of `snakemake --report` (captions in workflow/report/)."""
    input:
        report=DATA_CHECK,
        scored=SCORE_CHECK,
        scores=lambda w: evaluation_files(RUNS),
        summaries=expand(f"{EVALUATION}/{{run}}/summary.json", run=RUNS),
        # a finished training has written its curves (dvclive/<name>/, not a rule output)
        models=[model_file(name) for name in [*SOURCES, *(["mixer"] if "mixer" in MODEL_RUNS else [])]],
        code=code_deps("report"),
    output:
        table=f"{RESULTS}/table.md",
        page=report(
            f"{RESULTS}/table.html",
            caption="../report/table.rst",
            category="SDR scores",
            subcategory="SDR (museval, BSS Eval v4)",
            # one label per item: two labels with two values each would make the report offer a toggle
            labels={"result": "SDR table, with the paper and provenance"},
        ),
        csv=f"{RESULTS}/table.csv",
        json=f"{RESULTS}/table.json",
        # the handful of numbers DVC shows as this pipeline's metrics (per run and source: median SDR, interval)
        metrics=f"{RESULTS}/metrics.json",
        boxplot=report(
            f"{RESULTS}/{P.report.boxplot}",
            caption="../report/boxplot.rst",
            category="SDR scores",
            subcategory="SDR (museval, BSS Eval v4)",
            labels={"result": "Song by song (box plot)"},
        ),
        curves=[
            report(
                f"{RESULTS}/curves/{name}.png",
                caption="../report/curves.rst",
                category="Training curves",
                subcategory="Mixer" if name in MIXER_RUNS else "Separators",
                labels={"model": {"mixer": "Mixer", "mixer-conv": "conv Mixer"}.get(name, name)},
            )
            for name in TRAINED
        ],
    params:
        file=PARAMS_FILE,
        # every value (the table records the params hash) as their digest: the same rerun trigger as the
        # values themselves, one line where the HTML report lists each result's job parameters
        deps=hashlib.sha256(stage_params("report").encode()).hexdigest(),
        runs=" ".join(f"{run}={EVALUATION}/{run}" for run in RUNS),
        imported=f"--imported {MODELS}" if IMPORTING else "",
        score_check=f"--score-check {SCORE_CHECK}" if SCORES_ANOTHER_RELEASE else "",
        models=lambda w, input: os.path.dirname(input.models[0]),
        results=lambda w, output: os.path.dirname(output.table),
        # the training curves, when these models were trained here
        curves=(f" && mdxnet --params {PARAMS_FILE} render curves {' '.join(f'dvclive/{n}' for n in TRAINED)}"
                f" -o {RESULTS}/curves >> logs/report.log 2>&1" if TRAINED else ""),
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report.tsv"
    shell:
        "mdxnet --params {params.file} report --runs {params.runs} --data-check {input.report:q} {params.score_check}"
        " {params.imported}"
        " --models {params.models:q} -o {params.results:q} > {log:q} 2>&1"
        " && mdxnet --params {params.file} render table {output.table:q} -o {output.page:q} >> {log:q} 2>&1"
        " && mdxnet --params {params.file} metrics {output.json:q} -o {output.metrics:q} >> {log:q} 2>&1"
        "{params.curves}"
