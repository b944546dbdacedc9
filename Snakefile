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


rule all:
    """The results table and box plots (and, through them, every step before)."""
    default_target: True
    input:
        rules.report.output,
