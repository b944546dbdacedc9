# Evaluation: museval scores per test track (one job per track and run), a summary per run, the results table.

import hashlib


rule evaluate_track:
    """Separate one test track (or apply a baseline) and score it with museval (BSS Eval v4, SiSEC2018)."""
    input:
        report=DATA_CHECK,
        track=lambda w: track_files(test_songs()[w.track]),
        models=model_inputs,
        code=lambda w: code_deps(run_stage(w.run)),
    output:
        scores="evaluation/{run}/test/{track}.json",
    params:
        file=PARAMS_FILE,
        deps=lambda w: stage_params(run_stage(w.run)),
        track=lambda w: test_songs()[w.track],
        estimator=lambda w: RUNS[w.run],
        models=lambda w, input: os.path.dirname(input.models[0]) if input.models else MODELS,
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
        "mdxnet --params {params.file} evaluate track {params.track:q} {params.estimator} --models {params.models}"
        " -o {output.scores:q} > {log:q} 2>&1"


rule aggregate:
    """One run's SiSEC2018 summary: median over frames per song, then median over songs, per source and metric."""
    input:
        scores=lambda w: evaluation_files([w.run]),
        code=lambda w: code_deps(run_stage(w.run)),
    output:
        summary="evaluation/{run}/summary.json",
    params:
        file=PARAMS_FILE,
        folder=lambda w, input: os.path.dirname(input.scores[0]),
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/aggregate/{run}.log",
    benchmark:
        "benchmarks/aggregate/{run}.tsv"
    shell:
        "mdxnet --params {params.file} evaluate aggregate {params.folder:q} -o {output.summary:q} > {log:q} 2>&1"


rule evaluate_models:
    """Target of the DVC `evaluate` stage: every test track scored with and without the Mixer, and summaries."""
    input:
        lambda w: evaluation_files(MODEL_RUNS),
        expand("evaluation/{run}/summary.json", run=MODEL_RUNS),


rule evaluate_baselines:
    """Target of the DVC `baselines` stage: the mixture (lower bound) and IRM oracle (upper bound) scores."""
    input:
        lambda w: evaluation_files(BASELINE_RUNS),
        expand("evaluation/{run}/summary.json", run=BASELINE_RUNS),


# Training logs drawn for the HTML report: dvclive/<name>/ as `mdxnet train` writes it for each model (none for
# imported models).
TRAINED = [] if IMPORTING else [*SOURCES, "mixer"]


rule report:
    """The results table (paper rows + this run's), box plots, the training curves of every model, and the
    provenance of the numbers; the items of `snakemake --report` (captions in workflow/report/)."""
    input:
        report=DATA_CHECK,
        scores=lambda w: evaluation_files(RUNS),
        summaries=expand("evaluation/{run}/summary.json", run=RUNS),
        # a finished training has written its curves (dvclive/<name>/, not a rule output)
        models=[model_file(name) for name in [*SOURCES, *(["mixer"] if "mixer" in MODEL_RUNS else [])]],
        code=code_deps("report"),
    output:
        table="results/table.md",
        page=report(
            "results/table.html",
            caption="../report/table.rst",
            category="SDR scores",
            subcategory="SDR (museval, BSS Eval v4)",
            # one label per item: two labels with two values each would make the report offer a toggle
            labels={"result": "SDR table, with the paper and provenance"},
        ),
        csv="results/table.csv",
        json="results/table.json",
        boxplot=report(
            f"results/{P.report.boxplot}",
            caption="../report/boxplot.rst",
            category="SDR scores",
            subcategory="SDR (museval, BSS Eval v4)",
            labels={"result": "Song by song (box plot)"},
        ),
        curves=[
            report(
                f"results/curves/{name}.png",
                caption="../report/curves.rst",
                category="Training curves",
                subcategory="Mixer" if name == "mixer" else "Separators",
                labels={"model": "Mixer" if name == "mixer" else name},
            )
            for name in TRAINED
        ],
    params:
        file=PARAMS_FILE,
        # every value (the table records the params hash) as their digest: the same rerun trigger as the
        # values themselves, one line where the HTML report lists each result's job parameters
        deps=hashlib.sha256(stage_params("report").encode()).hexdigest(),
        runs=" ".join(f"{run}=evaluation/{run}" for run in RUNS),
        imported=f"--imported {MODELS}" if IMPORTING else "",
        models=MODELS,
        # the training curves, when these models were trained here
        curves=(f" && mdxnet --params {PARAMS_FILE} render curves {' '.join(f'dvclive/{n}' for n in TRAINED)}"
                " -o results/curves >> logs/report.log 2>&1" if TRAINED else ""),
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report.tsv"
    shell:
        "mdxnet --params {params.file} report --runs {params.runs} --data-check {input.report:q} {params.imported}"
        " --models {params.models:q} -o results > {log:q} 2>&1"
        " && mdxnet --params {params.file} render table {output.table:q} -o {output.page:q} >> {log:q} 2>&1"
        "{params.curves}"
