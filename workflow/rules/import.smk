# models.origin: import. The published files named in params models.published (downloaded beforehand: nothing is
# fetched here) are imported into models/imported/ by `mdxnet models import`, one job per file; evaluation then
# reads that folder as it reads trained models and writes under published/ (evaluation, estimates, results).
# Augmentation and training are not part of this workflow. Its DVC pipeline is published/dvc.yaml; what its
# `import` stage depends on (code and params keys, declared in mdxnet.stages) is the rules' inputs here too.

PUBLISHED = P.models.published
IMPORTED_NAMES = SOURCES + (["mixer"] if PUBLISHED.files["mixer"] is not None else [])
ONNX_NAMES = [name for name in IMPORTED_NAMES if PUBLISHED.files[name].endswith(".onnx")]
CHECKPOINT_NAMES = [name for name in IMPORTED_NAMES if name not in ONNX_NAMES]
IMPORT_PIPELINE = "published/dvc.yaml"
# what an import reads besides the file: the values it falls back on and checks (model, chunk, Mixer)
IMPORT_PARAMS = stage_params("import", pipeline=IMPORT_PIPELINE)
IMPORT_CODE = code_deps("import", pipeline=IMPORT_PIPELINE)


def published_file(wildcards):
    path = Path(PUBLISHED.dir) / PUBLISHED.files[wildcards.name]
    if not path.is_file():
        raise WorkflowError(
            f"models.origin is 'import' but {path} (models.published.files.{wildcards.name}) does not exist: "
            "download the published files first (README, 'Auditing the published models')"
        )
    return str(path)


if ONNX_NAMES:

    rule import_onnx:
        """Copy one published ONNX separator into models/imported/ with its record (STFT settings, sha256)."""
        input:
            file=published_file,
            code=IMPORT_CODE,
        output:
            model=f"{MODELS}/{{name}}.onnx",
            record=f"{MODELS}/{{name}}.import.json",
        wildcard_constraints:
            name="|".join(ONNX_NAMES),
        params:
            file=PARAMS_FILE,
            deps=IMPORT_PARAMS,
            out=MODELS,
        conda:
            "../envs/mdxnet.yaml"
        log:
            "logs/import/{name}.log",
        benchmark:
            "benchmarks/import/{name}.tsv"
        shell:
            "mdxnet --params {params.file} models import {input.file:q} --as {wildcards.name}"
            " -o {params.out:q} > {log:q} 2>&1"


if CHECKPOINT_NAMES:

    rule import_checkpoint:
        """Convert one published checkpoint (a Lightning ConvTDFNet, the authors' Mixer) to an mdxnet one."""
        input:
            file=published_file,
            code=IMPORT_CODE,
        output:
            model=f"{MODELS}/{{name}}.pt",
            record=f"{MODELS}/{{name}}.import.json",
        wildcard_constraints:
            name="|".join(CHECKPOINT_NAMES),
        params:
            file=PARAMS_FILE,
            deps=IMPORT_PARAMS,
            out=MODELS,
        conda:
            "../envs/mdxnet.yaml"
        log:
            "logs/import/{name}.log",
        benchmark:
            "benchmarks/import/{name}.tsv"
        shell:
            "mdxnet --params {params.file} models import {input.file:q} --as {wildcards.name}"
            " -o {params.out:q} > {log:q} 2>&1"


rule import_models:
    """Every published file imported (the target `snakemake import_models`)."""
    input:
        [f"{MODELS}/{name}.import.json" for name in IMPORTED_NAMES],


rule evaluate_published:
    """Target of published/dvc.yaml's `evaluate` stage: every run scored (the imported models with and without
    their Mixer, the blends with a second system, the baselines) and summarised, under published/evaluation/."""
    input:
        lambda w: evaluation_files(RUNS),
        expand(f"{EVALUATION}/{{run}}/summary.json", run=RUNS),
