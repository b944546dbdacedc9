"""The SLURM profile for real: the ci chain runs through `profiles/slurm` (+ `profiles/slurm-small`) on a one-node
cluster started by scripts/local-slurm.sh, with no GPU and no accounting daemon, and a training job killed by
`scancel` half-way is resubmitted (`retries`) and resumes from its checkpoint.

Skipped where the cluster cannot start (SLURM or munge not installed, not root): the skip reason says how to
install them. The daemons are stopped when the module's tests end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_workflow import BIN, REPO, SNAKEMAKE, make_copy, run

pytestmark = pytest.mark.slow

SCRIPT = REPO / "scripts" / "local-slurm.sh"
CANNOT_RUN_HERE = 3  # local-slurm.sh's exit code when SLURM is not installed or the user is not root
# Steps of every separator in this run: long enough (~0.03 s a step on 2 busy cores) for the test to see the first
# checkpoint of the vocals job and cancel it well before it ends.
STEPS = 60


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running one-node cluster; yields the environment its clients need. Stopped at the end, even on failure."""
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "LOCAL_SLURM_DIR": str(state)}
    started = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=180)
    try:
        if started.returncode == CANNOT_RUN_HERE:
            pytest.skip(started.stderr.strip())
        assert started.returncode == 0, f"local-slurm.sh start failed:\n{started.stderr}"
        exports = subprocess.run([str(SCRIPT), "env"], env=env, capture_output=True, text=True, check=True).stdout
        conf = re.search(r"SLURM_CONF=(\S+)", exports).group(1)
        yield {"LOCAL_SLURM_DIR": str(state), "SLURM_CONF": conf,
               "PATH": f"{state / 'bin'}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)


def cancel_after_first_checkpoint(folder: Path, log: Path, chain: subprocess.Popen, source: str, env: dict) -> str:
    """Waits for the training job of `source` to write its resumable checkpoint, then `scancel`s it; returns its
    SLURM job id."""
    last = folder / "models" / "checkpoints" / source / "last.pt"
    submitted = re.compile(rf"slurm_logs/rule_train_separator/{source}/(\d+)\.log")
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and chain.poll() is None:
        job = submitted.search(log.read_text())
        if job and last.is_file():
            subprocess.run(["scancel", job.group(1)], env=env, check=True)
            return job.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of the {source} training job to cancel:\n{log.read_text()[-3000:]}")


def test_ci_chain_on_a_slurm_cluster_survives_a_cancelled_training_job(cluster, tmp_path):
    def edit(raw):
        ci = raw["profiles"]["ci"]
        ci["train"].update(steps=STEPS, valid_every=STEPS, checkpoint_every=2)
        ci["evaluate"] = {"backend": "fast"}  # museval's numbers are tested elsewhere; here only the cluster path

    folder = make_copy(tmp_path / "project", edit)
    log = tmp_path / "snakemake.log"
    env = {**os.environ, **cluster}
    start = time.perf_counter()
    with log.open("w") as out:
        chain = subprocess.Popen([SNAKEMAKE, "--profile", "profiles/slurm", "--workflow-profile", "profiles/slurm-small",
                                  "all"], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            cancelled = cancel_after_first_checkpoint(folder, log, chain, "vocals", env)
            code = chain.wait(timeout=600)
        finally:
            if chain.poll() is None:  # the test failed: stop Snakemake (SIGINT: it cancels its SLURM jobs)
                chain.send_signal(signal.SIGINT)
                try:
                    chain.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    chain.kill()
                    chain.wait()
    seconds = time.perf_counter() - start
    print(f"ci chain through SLURM: {seconds:.0f} s")
    text = log.read_text()
    assert code == 0, text[-6000:]

    # the cancelled job failed as CANCELLED, and the training was submitted again (profiles/slurm: retries: 1)
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in text
    submissions = set(re.findall(r"slurm_logs/rule_train_separator/vocals/(\d+)\.log", text))
    assert len(submissions) == 2 and cancelled in submissions
    # ... and resumed from the checkpoint the first run left, then trained to the end
    resumed = re.search(r"resuming vocals from models/checkpoints/vocals/last.pt at step (\d+)",
                        (folder / "logs/train/vocals.log").read_text())
    assert resumed and 2 <= int(resumed.group(1)) < STEPS
    assert json.loads((folder / "dvclive/vocals/metrics.json").read_text())["step"] == STEPS

    # the whole chain ran: the results table with every run's summary, on the ci profile
    table = (folder / "results/table.md").read_text()
    provenance = json.loads((folder / "results/table.json").read_text())["provenance"]
    assert provenance["profile"] == "ci" and provenance["params_hash"] in table
    for run_name in ("mixer", "no-mixer", "mixture", "irm"):
        summary = json.loads((folder / "evaluation" / run_name / "summary.json").read_text())
        assert summary["tracks"] == 1 and set(summary["summary"]) == {"vocals", "drums", "bass", "other"}
    # nothing left behind on the cluster
    assert run(["squeue", "-h", "-o", "%i"], folder, env=cluster).stdout.strip() == ""
