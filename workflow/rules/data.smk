# Data: make the dataset exist (generate it or download MUSDB18-HQ) and check it (the augmentation cache, used
# only for training, is in train.smk); the same for the scored release where it is not the training one
# (params data.score), in its own folder with its own check, read by the scoring rules only.

# Only the rule data.origin names is defined (with `existing`, neither: data.root is used as it is).
if P.data.origin == "synth":

    rule data_synth:
        """Generate the embedded default dataset (multitrack songs rendered with fluidsynth)."""
        input:
            code=code_deps("data"),
        output:
            dataset_made(DATA_ROOT),
        params:
            file=PARAMS_FILE,
            deps=stage_params("data"),
        conda:
            "../envs/mdxnet.yaml"
        log:
            "logs/data/synth.log",
        benchmark:
            "benchmarks/data/synth.tsv"
        shell:
            "mdxnet --params {params.file} data synth > {log:q} 2>&1"


if P.data.origin == "fetch":

    rule data_fetch:
        """Download the release data.dataset names (MUSDB18-HQ or MUSDB18; resumable, md5-checked) and extract it into
        data.root (complete or absent)."""
        input:
            code=code_deps("data"),
        output:
            dataset_made(DATA_ROOT),
        params:
            file=PARAMS_FILE,
            deps=stage_params("data"),
        conda:
            "../envs/mdxnet.yaml"
        log:
            "logs/data/fetch.log",
        benchmark:
            "benchmarks/data/fetch.tsv"
        shell:
            "mdxnet --params {params.file} data fetch > {log:q} 2>&1"


checkpoint data_check:
    """Validate the dataset; its report (with the dataset checksum) is what every later step depends on."""
    input:
        dataset=dataset_ready(),
        code=code_deps("data"),
    output:
        report=DATA_CHECK,
    params:
        file=PARAMS_FILE,
        deps=stage_params("data"),
        root=lambda w, input: dataset_folder(input.dataset, DATA_ROOT),
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/data/check.log",
    benchmark:
        "benchmarks/data/check.tsv"
    shell:
        "mdxnet --params {params.file} data check {params.root:q} --report {output.report:q} > {log:q} 2>&1"


# ---- the scored release (params data.score), where it is not the training one --------------------------------
if SCORES_ANOTHER_RELEASE and P.data.origin == "synth":

    rule score_synth:
        """Generate the scored release: the same songs as the training dataset (data.synth), in the layout
        data.score.dataset names."""
        input:
            code=code_deps("score_data"),
        output:
            dataset_made(SCORE_ROOT),
        params:
            file=PARAMS_FILE,
            deps=stage_params("score_data"),
        conda:
            "../envs/mdxnet.yaml"
        log:
            "logs/data/score-synth.log",
        benchmark:
            "benchmarks/data/score-synth.tsv"
        shell:
            "mdxnet --params {params.file} data synth --scored > {log:q} 2>&1"


if SCORES_ANOTHER_RELEASE and P.data.origin == "fetch":

    rule score_fetch:
        """Download the scored release (MUSDB18 or MUSDB18-HQ, as data.score.dataset names; resumable,
        md5-checked) and extract it into data.score.root (complete or absent)."""
        input:
            code=code_deps("score_data"),
        output:
            dataset_made(SCORE_ROOT),
        params:
            file=PARAMS_FILE,
            deps=stage_params("score_data"),
        conda:
            "../envs/mdxnet.yaml"
        log:
            "logs/data/score-fetch.log",
        benchmark:
            "benchmarks/data/score-fetch.tsv"
        shell:
            "mdxnet --params {params.file} data fetch --scored > {log:q} 2>&1"


if SCORES_ANOTHER_RELEASE:

    checkpoint score_check:
        """Validate the scored release; its report is what the separation and scoring of its test songs depend on
        (training depends on the data check only)."""
        input:
            dataset=dataset_ready(SCORE_ROOT, "data.score.root", P.data.scored_release),
            code=code_deps("score_data"),
        output:
            report=SCORE_CHECK,
        params:
            file=PARAMS_FILE,
            deps=stage_params("score_data"),
            root=lambda w, input: dataset_folder(input.dataset, SCORE_ROOT),
        conda:
            "../envs/mdxnet.yaml"
        log:
            "logs/data/score-check.log",
        benchmark:
            "benchmarks/data/score-check.tsv"
        shell:
            "mdxnet --params {params.file} data check {params.root:q} --scored --report {output.report:q}"
            " > {log:q} 2>&1"


rule score_data:
    """Target of the DVC `score_data` stage: the scored release checked (the data check itself where it is the
    training release)."""
    input:
        SCORE_CHECK,
