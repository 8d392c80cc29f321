"""The pretraining benchmark runs unchanged on a CPU (and on a GPU, where its figures are numbers
instead of n/a): its --trainer table per input mode, --ops, --sdpa, an out-of-memory cell."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile

import torch

from conftest import REPO

CUDA = torch.cuda.is_available()
MFU = r"(?:[\d.]+%|n/a)" if CUDA else "n/a"       # n/a on a GPU without a PEAK_BF16_TFLOPS entry too
GIB = r"[\d.]+" if CUDA else "n/a"


def _module(name):
    """A script of benchmarks/ imported by its path, to run in this process (no interpreter start)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _in_process(name, capsys, monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *args])
    _module(name).main()
    return capsys.readouterr().out


def _benchmark(*args):
    run = subprocess.run([sys.executable, "benchmarks/pretrain.py", *args], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_trainer_benchmark_prints_a_row_per_model_and_input_mode():
    run = _benchmark("--trainer", "--records", "120", "--patients", "80", "--steps", "6", "--batch", "8",
                     "--workers", "1", "--models", "HL_p250_d1_e32,GL_p250_d1_e32")
    rows = re.findall(rf"^\| (\w+) \| (\w+) \| ([\d.]+) \| ([\d,]+) \| ([\d,]+) \| ([\d.]+) \| ([\d.]+) "
                      rf"\| {MFU} \| {GIB} \|$", run.stdout, re.MULTILINE)
    modes = ["stream", "host", "device"] if CUDA else ["stream", "device"]
    assert [(m, mode) for m, mode, *_ in rows] == [(m, mode) for m in ("HL_p250_d1_e32", "GL_p250_d1_e32")
                                                   for mode in modes]
    for *_, first, alone, trainer, ratio, gflop in rows:
        assert float(first) >= 0 and int(alone.replace(",", "")) > 0 and int(trainer.replace(",", "")) > 0
        assert float(gflop) > 0
    assert "streamed from the shards" in run.stderr and "in device memory" in run.stderr


def test_an_out_of_memory_cell_is_printed_as_such_and_the_table_goes_on(capsys, monkeypatch):
    out = _in_process("pretrain", capsys, monkeypatch, "--trainer", "--records", "60", "--patients", "40",
                      "--steps", "2", "--batch", str(10**9), "--workers", "0",
                      "--models", "HL_p250_d1_e32,GL_p250_d1_e32")
    assert re.findall(r"^\| (\w+) \| \| \| OOM at batch 1000000000 \|", out, re.MULTILINE) == [
        "HL_p250_d1_e32", "GL_p250_d1_e32"]


def test_ops_benchmark_counts_the_operators_of_each_section_of_a_step():
    run = _benchmark("--ops", "--models", "HL_p250_d1_e32,GL_p250_d1_e32")
    syncs = r"\d+" if CUDA else "n/a"
    rows = {m: [int(v) for v in counts] for m, *counts in
            re.findall(rf"^\| (\w+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| {syncs} \|$", run.stdout,
                       re.MULTILINE)}
    assert set(rows) == {"HL_p250_d1_e32", "GL_p250_d1_e32"}
    for draws, forward, backward, update, total in rows.values():
        assert forward > 0 and backward > 0 and update > 0 and total == draws + forward + backward + update
    assert rows["HL_p250_d1_e32"][0] == 3          # the views' two tables and the masking noise: three draws
    assert rows["GL_p250_d1_e32"][0] == 1          # no views: the masking noise alone


def test_sdpa_benchmark_compares_the_attention_backends(capsys, monkeypatch):
    out = _in_process("pretrain", capsys, monkeypatch, "--sdpa", "--models", "HL_p250_d1_e32", "--backends",
                      "auto,efficient", "--batch", "2", "--steps", "1", "--warmup", "0")
    (tokens, auto, efficient), = re.findall(r"^\| HL_p250_d1_e32 \| (\d+) \| ([\d,]+) \| (\S+) \|$", out,
                                            re.MULTILINE)
    assert int(tokens) == 10 and auto.replace(",", "").isdigit()      # a rate (0 on a loaded CPU at batch 2)
    assert efficient != "unsupported" if CUDA else efficient == "unsupported"     # no such kernel on a CPU


def test_the_peak_is_the_exact_devices():
    bench = _module("pretrain")
    assert bench.peak_tflops("NVIDIA H100 80GB HBM3", None) == 989.5          # SXM
    assert bench.peak_tflops("NVIDIA H100 PCIe", None) == 756.5
    assert bench.peak_tflops("NVIDIA H100 NVL", None) == 835.5
    assert bench.peak_tflops("NVIDIA H200", None) == 989.5
    assert bench.peak_tflops("NVIDIA H100", None) is None                     # no name match: unknown
    assert bench.peak_tflops(None, None) is None and bench.peak_tflops("NVIDIA H100 PCIe", 700.0) == 700.0


# run in a fresh interpreter where snakemake and defusedxml cannot be imported (the GPU image has
# neither) and every import of the three that the image lacks is recorded
_NOT_ON_THE_IMAGE = r'''
import importlib.abc, runpy, sys
asked = set()
class NotOnTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        root = name.partition(".")[0]
        if root in ("snakemake", "jsonschema", "defusedxml"):
            asked.add(root)
            if root != "jsonschema":
                raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU image)")
sys.meta_path.insert(0, NotOnTheImage())
for script, *args in SCRIPTS:
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        assert not stop.code, (script, stop.code)
print("asked for:", sorted(asked))
'''


def test_gpu_check_and_the_benchmark_answer_without_snakemake_or_defusedxml():
    """benchmarks/gpu_check.py (one_gpu.sh check) at a toy size: on a CPU the copies, the sync check
    and the pinned sizes say they need CUDA; the trainer runs through two flushes (eager here, to
    stay fast: preflight runs it compiled). It and the benchmark's entry point run as on the GPU
    image, which has neither snakemake nor jsonschema nor defusedxml: with snakemake and defusedxml
    made unimportable, they ask for jsonschema alone (ecgfm.config validates config.yaml with it),
    which the site that `prepare` packs carries (preflight runs them from it)."""
    scripts = [["benchmarks/gpu_check.py", "--model", "GL_p250_d1_e32", "--batch", "4", "--records", "60",
                "--patients", "40", "--steps", "4", "--log-every", "2", "--compile", "none"],
               ["benchmarks/pretrain.py", "--sdpa", "--models", "GL_p250_d1_e32", "--backends", "math",
                "--batch", "2", "--steps", "1", "--warmup", "0"]]
    run = subprocess.run([sys.executable, "-c", f"SCRIPTS = {scripts!r}\n{_NOT_ON_THE_IMAGE}"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    parts = dict(re.findall(r"^check (\w+): (ok|skipped|FAILED):", run.stdout, re.MULTILINE))
    want = "ok" if CUDA else "skipped"
    assert parts == {"copies": want, "syncs": want, "pinned": want, "compiled": "ok"}, run.stdout
    assert "4 distinct finite losses logged" in run.stdout
    assert re.search(r"^\| GL_p250_d1_e32 \| 10 \| [\d,]+ \|$", run.stdout, re.MULTILINE), run.stdout
    assert run.stdout.strip().endswith("asked for: ['jsonschema']"), run.stdout[-500:]


def test_one_gpu_bench_runs_every_table_when_one_fails(tmp_path):
    """`one_gpu.sh run bench` runs under `set -e`: a table that fails (here --sdpa) prints FAILED
    and the tables after it still run, so that one crash does not cost the others' GPU minutes. The
    script in a repository of its own, with an empty package site and a stand-in Python that
    prints what it is asked to run."""
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    shutil.copy(REPO / "benchmarks" / "one_gpu.sh", repo / "benchmarks")
    (repo / ".device").mkdir()
    tarfile.open(repo / ".device" / "site.tar.xz", "w:xz").close()
    (repo / "data" / "ptbxl").mkdir(parents=True)
    (repo / "data" / "ptbxl" / "ptbxl_database.csv").write_text("")       # PTB-XL unpacked already
    python = tmp_path / "python"
    python.write_text('#!/bin/sh\n[ "$1" = - ] && exec cat > /dev/null\necho "ran $*"\n'
                      'case " $* " in *" --sdpa "*) exit 1;; esac\n')
    python.chmod(0o755)
    env = {**os.environ, "PYTHON": str(python), "OUT": str(tmp_path / "out"), "ECGFM_SITE": str(tmp_path / "site")}
    run = subprocess.run(["bash", "benchmarks/one_gpu.sh", "run", "bench"], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.findall(r"^ran benchmarks/pretrain.py (--\w+)", run.stdout, re.MULTILINE) == [
        "--ops", "--sdpa", "--trainer", "--trainer"], run.stdout
    assert "bench: --sdpa FAILED" in run.stdout and "reduce-overhead FAILED" not in run.stdout
