# Training (models.origin: train): the augmentation cache, one TFC-TDF-U-Net v2 separator per source, then the
# Mixers on top of the four frozen separators.


rule augment:
    """Pitch-shifted and time-stretched copies of one training track (one job per track)."""
    input:
        report=DATA_CHECK,
        track=train_track_files,
        code=code_deps("augment"),
    output:
        manifest=f"{AUGMENT_ROOT}/{{track}}/manifest.json",
    params:
        file=PARAMS_FILE,
        deps=stage_params("augment"),
    priority: 1
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/augment/{track}.log",
    benchmark:
        "benchmarks/augment/{track}.tsv"
    shell:
        "mdxnet --params {params.file} augment --track {wildcards.track:q} > {log:q} 2>&1"


rule augment_all:
    """Target of the DVC `augment` stage (trained path only): the augmentation cache of every training track."""
    input:
        augment_manifests,


rule train_separator:
    """Train the separator of one source; one job per source, in train.gpus processes (torchrun), each on a GPU
    when train.device is cuda."""
    input:
        report=DATA_CHECK,
        augmented=augment_manifests,
        code=code_deps("train"),
    output:
        model=f"{MODELS}/{{source}}.pt",
    params:
        file=PARAMS_FILE,
        deps=lambda w: stage_params("train", w.source),
        launch=train_launcher,
    resources:
        gpu=train_gpus,
    priority: 1
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/train/{source}.log",
    benchmark:
        "benchmarks/train/{source}.tsv"
    shell:
        "{params.launch}mdxnet --params {params.file} train separator --source {wildcards.source}"
        " --out {output.model:q} > {log:q} 2>&1"


rule train_mixer:
    """Train a Mixer on the outputs of the four frozen separators: `mixer`, the recipe's (params mixer), and
    `mixer-conv`, the deeper conv Mixer (mdxnet's own) on the same separators, evaluated as its own run."""
    input:
        report=DATA_CHECK,
        augmented=augment_manifests,
        separators=expand(f"{MODELS}/{{source}}.pt", source=SOURCES),
        code=code_deps("mixer"),
    output:
        model=f"{MODELS}/{{mixer}}.pt",
    params:
        file=PARAMS_FILE,
        deps=stage_params("mixer"),
        models=lambda w, input: os.path.dirname(input.separators[0]),
        kind=lambda w: f"--kind {MIXER_RUNS[w.mixer]}" if MIXER_RUNS[w.mixer] else "",
        live=lambda w: f"dvclive/{w.mixer}",
    resources:
        gpu=gpus(P.train.device),
    priority: 1
    conda:
        "../envs/mdxnet.yaml"
    log:
        "logs/train/{mixer}.log",
    benchmark:
        "benchmarks/train/{mixer}.tsv"
    shell:
        "mdxnet --params {params.file} train mixer --models {params.models} {params.kind}"
        " --live-dir {params.live:q} --out {output.model:q} > {log:q} 2>&1"


rule train_mixers:
    """Target of the DVC `mixer` stage: both Mixers."""
    input:
        expand(f"{MODELS}/{{mixer}}.pt", mixer=MIXER_RUNS),
