# Data: make the dataset exist (generate it or download MUSDB18-HQ) and check it (the augmentation cache, used
# only for training, is in train.smk).

# Only the rule data.origin names is defined (with `existing`, neither: data.root is used as it is).
if P.data.origin == "synth":

    rule data_synth:
        """Generate the embedded default dataset (multitrack songs rendered with fluidsynth)."""
        input:
            code=code_deps("data"),
        output:
            DATASET_READY["synth"],
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
            DATASET_READY["fetch"],
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
        root=lambda w, input: os.path.dirname(input.dataset[0]) if input.dataset else DATA_ROOT,
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/data/check.log",
    benchmark:
        "benchmarks/data/check.tsv"
    shell:
        "mdxnet --params {params.file} data check {params.root:q} --report {output.report:q} > {log:q} 2>&1"
