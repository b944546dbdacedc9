"""Shared test fixtures: paths to real stem files, tiny params, and a quiet, deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mdxnet.config import load_params

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_CLIP = REPO_ROOT.parent / "shared" / "data" / "real-clips" / "Music Delta - Rock.stem.mp4"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def real_clip() -> Path:
    """The shared real MUSDB clip (12.9 s); tests that need it skip when ../shared is absent."""
    if not REAL_CLIP.is_file():
        pytest.skip(f"shared real clip not found at {REAL_CLIP}")
    return REAL_CLIP


@pytest.fixture(scope="session")
def stempeg_clip() -> Path:
    """The real 6 s stem file shipped inside the stempeg package."""
    import stempeg

    path = Path(stempeg.__file__).parent / "data" / "The Easton Ellises - Falcon 69.stem.mp4"
    if not path.is_file():
        pytest.skip("stempeg's example stem file is not installed")
    return path


@pytest.fixture(scope="session")
def params() -> dict:
    """The project's params.yaml with its default (embedded) profile applied."""
    return load_params(REPO_ROOT / "params.yaml")


def worker_threads() -> int:
    """Torch threads per test process: the cores shared out between pytest-xdist's workers (`make test` runs
    `-n 2`), so that two workers on two cores do not each run two threads."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, min(2, (os.cpu_count() or 1) // workers))


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    """Few cores shared by everything: keep torch from oversubscribing them."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(worker_threads())


def pytest_collection_modifyitems(items):
    """The files holding slow tests first, each file kept whole and in order. Under `make test` (`--dist loadfile
    --no-loadscope-reorder`: xdist hands the files out in this order rather than largest test count first) the
    minutes-long workflow files start at once and the short files fill in around them, instead of the paper
    rehearsal starting last on one worker while the other idles (23 min 9 s that way, fresh clone of da1345a)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory, params) -> Path:
    """A tiny generated dataset in MUSDB18-HQ layout (data issue): 4 songs x 3 s, split 2 train / 1 valid / 1 test.

    Read-only for tests: copy it (shutil.copytree) before modifying. Skips when fluidsynth is absent.
    """
    import shutil

    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth is not installed (apt-get install fluidsynth fluid-soundfont-gm)")
    from mdxnet.data.synth import generate_dataset, synth_config

    root = tmp_path_factory.mktemp("synth") / "dataset"
    config = synth_config(params.data.synth, tracks=4, valid_tracks=1, test_tracks=1, seconds=3, seed=123, jobs=2)
    generate_dataset(root, config, progress=False)
    return root


@pytest.fixture(scope="session")
def fast_eval_params_file(tmp_path_factory) -> Path:
    """A copy of params.yaml scoring with the fast BSS Eval backend (evaluation issue): for tests about what is
    scored rather than about museval itself, which tests/test_eval_scoring.py and test_eval_fast.py pin down."""
    import yaml

    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["evaluate"]["backend"] = "fast"
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def museval_params_file(tmp_path_factory) -> Path:
    """A copy of params.yaml scoring with museval (the default is fast): for tests that pin our numbers to
    museval's own, bit for bit."""
    import yaml

    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["evaluate"]["backend"] = "museval"
    path = tmp_path_factory.mktemp("params-museval") / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _write_track_folder(folder: Path, frames: int = 441) -> None:
    import numpy as np
    import soundfile as sf

    from mdxnet.audio import STEM_NAMES

    folder.mkdir(parents=True)
    stems = {name: np.full((frames, 2), 0.01 * (i + 1), np.float32) for i, name in enumerate(STEM_NAMES) if i}
    for name, audio in {"mixture": sum(stems.values()), **stems}.items():
        sf.write(folder / f"{name}.wav", audio, 44100, subtype="FLOAT")


@pytest.fixture(scope="session")
def write_track():
    """write_track(folder, frames=441): a tiny MUSDB18-HQ track folder, constant stems (drums 0.02, bass 0.03,
    other 0.04, vocals 0.05) and their exact sum as the mixture."""
    return _write_track_folder


@pytest.fixture
def musdb_like(tmp_path) -> Path:
    """A MUSDB18-HQ-shaped folder without a recorded split: musdb's 14 official validation tracks plus
    'A Classic Education - NightOwl' and 'ANiMAL - Clinic A' in train/, 'Al James - Schoolboy Facination' in test/."""
    from mdxnet.data.musdb import musdb_validation_names

    root = tmp_path / "musdb"
    for name in (*musdb_validation_names(), "A Classic Education - NightOwl", "ANiMAL - Clinic A"):
        _write_track_folder(root / "train" / name)
    _write_track_folder(root / "test" / "Al James - Schoolboy Facination")
    return root
