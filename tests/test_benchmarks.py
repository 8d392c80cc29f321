"""The pretraining benchmark runs unchanged on a CPU: its --trainer table, per input mode."""
import re
import subprocess
import sys

from conftest import REPO


def test_trainer_benchmark_prints_a_row_per_model_and_input_mode():
    run = subprocess.run([sys.executable, "benchmarks/pretrain.py", "--trainer", "--records", "120", "--patients", "80",
                          "--steps", "6", "--batch", "8", "--workers", "1", "--models", "HL_p250_d1_e32,GL_p250_d1_e32"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = re.findall(r"^\| (\w+) \| (\w+) \| ([\d,]+) \| ([\d,]+) \| ([\d.]+) \| ([\d.]+) \| n/a \| n/a \|$",
                      run.stdout, re.MULTILINE)
    assert [(m, mode) for m, mode, *_ in rows] == [("HL_p250_d1_e32", "stream"), ("HL_p250_d1_e32", "device"),
                                                    ("GL_p250_d1_e32", "stream"), ("GL_p250_d1_e32", "device")]
    for *_, alone, trainer, ratio, gflop in rows:
        assert int(alone.replace(",", "")) > 0 and int(trainer.replace(",", "")) > 0 and float(gflop) > 0
    assert "streamed from the shards" in run.stderr and "in device memory" in run.stderr


def test_ops_benchmark_counts_the_operators_of_each_section_of_a_step():
    run = subprocess.run([sys.executable, "benchmarks/pretrain.py", "--ops", "--models", "HL_p250_d1_e32,GL_p250_d1_e32"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {m: [int(v) for v in counts] for m, *counts in
            re.findall(r"^\| (\w+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| n/a \|$", run.stdout, re.MULTILINE)}
    assert set(rows) == {"HL_p250_d1_e32", "GL_p250_d1_e32"}
    for draws, forward, backward, update, total in rows.values():
        assert forward > 0 and backward > 0 and update > 0 and total == draws + forward + backward + update
    assert rows["HL_p250_d1_e32"][0] == 3          # the views' two tables and the masking noise: three draws
    assert rows["GL_p250_d1_e32"][0] == 1          # no views: the masking noise alone
