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


DEMO_FIXTURE = "demo_results"
DEMO_TIMEOUT = 1500      # seconds: the demo alone takes 5-7 minutes on 2 cores, longer beside the other tests


def _needs_demo(item) -> bool:
    """The test uses the demo's results and no mark skips it outright (skip, or skipif on a
    condition already true, as the slow whole-DAG SLURM test's)."""
    skipped = any(m.name == "skip" or (m.name == "skipif" and m.args and m.args[0] is True)
                  for m in item.iter_markers())
    return DEMO_FIXTURE in getattr(item, "fixturenames", ()) and not skipped


def pytest_collection_modifyitems(config, items):
    """The tests on the demo DAG's results run last (otherwise in their order): the DAG itself
    runs in the background from the first test on (``_demo_run``), on the cores that the other
    tests leave idle while they wait on subprocesses, torchrun, a local SLURM or a socket."""
    items.sort(key=_needs_demo)


@pytest.fixture(scope="session", autouse=True)
def _demo_run(request, tmp_path_factory):
    """Starts the whole demo DAG (profiles/demo) in a temporary results folder when a collected
    test needs it (and snakemake is installed); yields (process, results folder, log) or None.
    A run left unfinished at the end of the session is killed, its process group and all."""
    import os
    import shutil
    import signal
    import subprocess
    exe = shutil.which("snakemake")
    if exe is None or not any(map(_needs_demo, request.session.items)):
        yield None
        return
    results = tmp_path_factory.mktemp("demo-results")
    log = results.parent / f"{results.name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["timeout", "-s", "KILL", str(DEMO_TIMEOUT), exe, "--profile", "profiles/demo",
                                 "--config", f"results={results}"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    yield proc, results, log
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def demo_results(_demo_run):
    """The whole demo DAG's results folder, once per session (started by ``_demo_run``)."""
    if _demo_run is None:
        pytest.skip("snakemake is not installed (pip install -e '.[workflow]')")
    proc, results, log = _demo_run
    code = proc.wait()
    assert code == 0, f"the demo DAG ended with exit code {code} (137: killed after {DEMO_TIMEOUT} s):\n" \
                      + log.read_text()[-3000:]
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
