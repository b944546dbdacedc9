# mdxnet workflow: dataset -> data check -> augmentation cache -> 4 separators -> Mixer -> museval -> results.
# Every value comes from params.yaml (profile applied); every rule runs one `mdxnet` command.
# Run from the project root: `.venv/bin/snakemake --cores 2 all` (Snakemake finds this Snakefile and the default
# profile profiles/default itself); the rules live in workflow/rules/; design notes: workflow/README.md.

from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


# the first page of `snakemake --report results/report.html` (its items: the report rule's outputs)
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
if IMPORTING:  # models.origin: import

    include: "workflow/rules/import.smk"

else:

    include: "workflow/rules/train.smk"


include: "workflow/rules/evaluate.smk"


# The DVC stage targets of the other origin's pipeline (dvc.yaml trains, published/dvc.yaml imports) stop with
# the way out instead of failing on a missing rule (or, for augment_all, augmenting for nothing).
if IMPORTING:
    OTHER_PIPELINE_TARGETS = ["augment_all", "train_mixers"]
    OTHER_PIPELINE_HINT = (
        "models.origin is 'import' (params.yaml): the trained path's targets (dvc.yaml) do not exist; run the "
        "published-weights pipeline, `dvc repro published/dvc.yaml` or `snakemake all`, or set models.origin: "
        "train"
    )
else:
    OTHER_PIPELINE_TARGETS = ["import_models", "evaluate_published"]
    OTHER_PIPELINE_HINT = (
        "models.origin is 'train' (params.yaml): published/dvc.yaml evaluates imported weights; set "
        "models.origin: import (e.g. `dvc exp run -S models.origin=import published/dvc.yaml`), or run dvc.yaml "
        "to train"
    )
for target in OTHER_PIPELINE_TARGETS:

    rule:
        """A target of the other origin's DVC pipeline, refused with the way out."""
        name:
            target
        log:
            f"logs/refused/{target}.log",
        localrule: True
        run:
            raise WorkflowError(OTHER_PIPELINE_HINT)


rule all:
    """The results table and box plots (and, through them, every step before), and every score and summary
    they were made from."""
    default_target: True
    input:
        rules.report.output,
        # Snakemake reruns a job for a missing output only when a target asks for that file or a job downstream
        # has to run anyway: a per-track score deleted, or lost to a scoring job killed after Snakemake had
        # removed its old output, was never rebuilt while the summary and table stood. Named
        # here, a missing one is rebuilt, and its summary and the table after it. The stored estimates are left
        # out on purpose: deleted to free disk, they would otherwise cost a separation of every song again.
        lambda w: evaluation_files(RUNS),
        expand(f"{EVALUATION}/{{run}}/summary.json", run=RUNS),


# The cost of the run before it starts (mdxnet.plan: jobs, disk and time per stage, estimates), printed when
# `all` is a target and jobs are to run (Snakemake skips onstart in a dry run). Only a view: a plan that
# fails is one logged line, never a failed workflow.
onstart:
    try:
        if any(job.rule.name == "all" for job in workflow.dag.targetjobs):
            # imported here: mdxnet.plan loads torch, which a dry run or --lint need not wait for
            from mdxnet.plan import make_plan, render_table

            logger.info(render_table(make_plan(P)))
    except Exception as err:  # noqa: BLE001 - the plan must never stop the workflow
        logger.warning(f"mdxnet plan: no plan printed ({type(err).__name__}: {err})")
