import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).parent))


def shared_or_skip(*parts) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it ships beside the repository "
                    f"as ../shared/data on the project's machines)")
    return path


def run_snakemake(*args, timeout=480):
    """Snakemake in the repository, killed after ``timeout`` s (it ignores SIGTERM while waiting)."""
    import shutil
    import subprocess
    exe = shutil.which("snakemake")
    if exe is None:
        pytest.skip("snakemake is not installed (pip install -e '.[workflow]')")
    return subprocess.run(["timeout", "-s", "KILL", str(timeout), exe, *args], cwd=REPO,
                          capture_output=True, text=True, check=False)


@pytest.fixture(scope="session")
def demo_results(tmp_path_factory):
    """The whole demo DAG (profiles/demo), run once per session in a temporary results folder."""
    results = tmp_path_factory.mktemp("demo-results")
    run = run_snakemake("--profile", "profiles/demo", "--config", f"results={results}", timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return results


@pytest.fixture
def http_server():
    from httpserver import FixtureServer
    with FixtureServer() as server:
        yield server


@pytest.fixture(scope="session")
def ptbxl_real(tmp_path_factory):
    """The PhysioNet layout of the real PTB-XL copy: all of records100 and records500 (~20 s)."""
    import subprocess
    unpack = shared_or_skip("ptbxl", "unpack.py")
    dest = tmp_path_factory.mktemp("ptbxl")
    subprocess.run([sys.executable, str(unpack), str(dest)], check=True, capture_output=True)
    return dest


def make_demo_ptbxl(root: Path, n_patients: int, seed: int, max_ecgs_per_patient: int, shard_size: int) -> Path:
    """A demo PTB-XL archive under root/raw, standardized into root/std (returned)."""
    from ecgfm.corpus import standardize_source
    from ecgfm.demo import write_demo_source
    from ecgfm.readers import make_reader
    from ecgfm.standardize import Settings
    write_demo_source("ptbxl", root / "raw", n_patients=n_patients, seed=seed,
                      max_ecgs_per_patient=max_ecgs_per_patient)
    standardize_source(make_reader("ptbxl", root / "raw", "ptbxl"), root / "std", "ptbxl",
                       Settings(expected_fs=500), shard_size=shard_size, threads=2, progress=False)
    return root / "std"


@pytest.fixture(scope="session")
def demo_shards(tmp_path_factory):
    """A standardized demo PTB-XL corpus (about 150 records of 80 patients) for pretraining tests."""
    return make_demo_ptbxl(tmp_path_factory.mktemp("demo-shards"), 80, 4, 3, 40)


def tiny_pretrain_settings(method="HL", **overrides):
    from ecgfm.config import load_config, pretrain_settings
    settings = pretrain_settings(load_config(REPO / "config.yaml"), method, 250, 1, 32)
    settings["architecture"].update(head_dim=16, decoder_width=16, decoder_depth=1, projection_dim=8)
    settings.update(batch_size=16, steps=24, warmup_steps=4, checkpoint_every=8, num_workers=0,
                    tensorboard=False, lr=2e-3)
    import torch
    if torch.cuda.is_available():
        # the tests compare two CUDA runs bit for bit: the math backend, whose backward adds in a
        # fixed order (the flash and memory-efficient backwards accumulate with atomics)
        settings["attention"] = "math"
    settings.update(overrides)
    return settings


@pytest.fixture(scope="session")
def demo_model(demo_shards, tmp_path_factory):
    """A small HL encoder pretrained for a few steps on the demo shards (the pretraining output)."""
    from ecgfm.pretrain import pretrain
    out = tmp_path_factory.mktemp("demo-model") / "HL_p250_d1_e32"
    pretrain(tiny_pretrain_settings(steps=8, checkpoint_every=8), [demo_shards], out, progress=False)
    return out
