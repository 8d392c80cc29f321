"""`ecgfm embed` / `ecgfm predict` and the Python API on one's own ECGs."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO, shared_or_skip
from ecgfm.leads import CANONICAL_LEADS
from ecgfm.readers import make_reader
from ecgfm.standardize import Settings, standardize_record

TASKS = ["MI", "STTC", "CD", "HYP"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ecgfm.cli", *map(str, args), "--quiet"], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})   # as the API here: on the CPU


@pytest.fixture(scope="module")
def wfdb_folder(tmp_path_factory):
    from ecgfm.demo import write_demo_source
    dest = tmp_path_factory.mktemp("wfdb-input")
    write_demo_source("wfdb", dest, n_patients=12, seed=3)
    return dest


def test_cli_embedding_equals_the_api_on_the_standardized_array(demo_model, wfdb_folder, tmp_path):
    from ecgfm.encoder import load_encoder
    run = _cli("embed", "--model", demo_model, "--input", wfdb_folder, "--out", tmp_path / "e.parquet")
    assert run.returncode == 0, run.stderr
    assert "WFDB folder: 12 records embedded, 0 rejected" in run.stderr
    frame = pd.read_parquet(tmp_path / "e.parquet")
    assert list(frame.columns) == ["record_id", "status", "reason", "leads_present", "leads_derived", "leads_zeroed",
                                   "embedding"] and len(frame) == 12
    assert set(frame["leads_present"]) == {"I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6"} and set(frame["leads_zeroed"]) == {""}
    encoder = load_encoder(demo_model)
    reader = make_reader("wfdb", wfdb_folder, "x")
    items, _ = reader.items()
    for item in items[:3]:
        raw = reader.load(item)
        ecg, _ = standardize_record(raw.signal, raw.fs, raw.lead_names, raw.unit, Settings())
        api = encoder.embed(ecg[None])[0]
        cli = frame.set_index("record_id").loc[item.record_id, "embedding"]
        assert cli.shape == (encoder.width,)
        np.testing.assert_allclose(cli, api, rtol=1e-5, atol=1e-6)


def test_api_resamples_and_crops_like_the_standardization(demo_model, wfdb_folder):
    from ecgfm.encoder import load_encoder
    from ecgfm.standardize import crop_or_pad, resample, unit_to_mv
    encoder = load_encoder(demo_model)
    reader = make_reader("wfdb", wfdb_folder, "x")
    raw = reader.load(reader.items()[0][0])            # 500 Hz, 10 s, in mV
    x = (raw.signal.T[None] * unit_to_mv(raw.unit)).astype(np.float32)
    expected = crop_or_pad(resample(x[0], raw.fs, 250.0), 2500, False)[0]
    np.testing.assert_allclose(encoder.embed(x, fs=raw.fs), encoder.embed(expected[None]), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="12 leads"):
        encoder.embed(np.zeros((1, 8, 2500), np.float32))
    with pytest.raises(ValueError, match="needs 10 s"):
        encoder.embed(np.zeros((1, 12, 1000), np.float32))


def test_real_cinc2021_folder_embeds_end_to_end(demo_model, tmp_path):
    cinc = shared_or_skip("cinc2021-samples")
    run = _cli("embed", "--model", demo_model, "--input", cinc, "--out", tmp_path / "cinc.parquet")
    assert run.returncode == 0, run.stderr
    frame = pd.read_parquet(tmp_path / "cinc.parquet")
    assert len(frame) == 50 and frame["record_id"].is_unique
    rejected = frame[frame["status"] == "rejected"]
    # the same two records the standardization stage quarantines, with the reason shown
    assert dict(zip(rejected["record_id"], rejected["reason"].str[:9])) == {"JS20004": "flat lead", "JS20008": "flat lead"}
    assert frame["embedding"].isna().sum() == 2
    assert np.isfinite(np.stack(frame.loc[frame["status"] == "ok", "embedding"].to_list())).all()
    assert "48 records embedded, 2 rejected" in run.stderr and "flat lead" in run.stderr


def test_code_style_hdf5_and_standardized_shards(demo_model, demo_shards, tmp_path):
    import h5py

    from ecgfm.demo import write_demo_source
    from ecgfm.encoder import embed_array, load_model
    from ecgfm.shards import ShardReader
    write_demo_source("code15", tmp_path / "code", n_patients=6, seed=2, missing_waveforms=0)
    part = sorted((tmp_path / "code").glob("exams_part*.hdf5"))[0]
    with h5py.File(part) as f:
        lengths = {str(int(i)): int(np.any(t != 0, axis=1).sum()) for i, t in zip(f["exam_id"][:], f["tracings"][:])
                   if i != 0}
    assert set(lengths.values()) == {2800, 4000}                         # 7 s and 10 s exams at 400 Hz
    run = _cli("embed", "--model", demo_model, "--input", part, "--out", tmp_path / "code.parquet")
    assert run.returncode == 0, run.stderr
    frame = pd.read_parquet(tmp_path / "code.parquet").set_index("record_id")
    assert set(frame.index) == set(lengths)
    for exam_id, n in lengths.items():             # without --pad-short, 7 s is listed as too short
        assert (frame.loc[exam_id, "status"] == "ok") == (n == 4000), frame.loc[exam_id, "reason"]
    # standardized shards are used as stored
    run = _cli("embed", "--model", demo_model, "--input", demo_shards, "--out", tmp_path / "shards.parquet")
    assert run.returncode == 0, run.stderr
    frame = pd.read_parquet(tmp_path / "shards.parquet")
    reader = ShardReader(demo_shards)
    assert frame["record_id"].tolist() == reader.manifest["record_id"].astype(str).tolist()
    expected = embed_array(load_model(demo_model), reader.read(np.arange(5)))
    np.testing.assert_allclose(np.stack(frame["embedding"][:5].to_list()), expected, rtol=1e-5, atol=1e-6)


def test_malformed_inputs_give_clear_errors(demo_model, tmp_path):
    import h5py
    (tmp_path / "notes.txt").write_text("not an ECG\n")
    run = _cli("embed", "--model", demo_model, "--input", tmp_path / "notes.txt", "--out", tmp_path / "o.parquet")
    assert run.returncode == 2 and "unknown input format" in run.stderr
    (tmp_path / "empty").mkdir()
    run = _cli("embed", "--model", demo_model, "--input", tmp_path / "empty", "--out", tmp_path / "o.parquet")
    assert run.returncode == 2 and "no records found" in run.stderr
    with h5py.File(tmp_path / "eight.hdf5", "w") as f:
        f["tracings"] = np.zeros((2, 4096, 8), np.float32)
    run = _cli("embed", "--model", demo_model, "--input", tmp_path / "eight.hdf5", "--out", tmp_path / "o.parquet")
    assert run.returncode == 2 and "expected [records, samples, 12]" in run.stderr
    # a record without the leads the model needs is listed as rejected, with the missing leads named (the
    # limb leads it lacks are derived from I and II)
    from ecgfm.wfdb import write_record
    (tmp_path / "three").mkdir()
    write_record(tmp_path / "three", "r1", np.zeros((5000, 3), np.int16), 500, ["I", "II", "V1"])
    run = _cli("embed", "--model", demo_model, "--input", tmp_path / "three", "--out", tmp_path / "t.parquet")
    assert run.returncode == 0, run.stderr
    row = pd.read_parquet(tmp_path / "t.parquet").iloc[0]
    assert row["status"] == "rejected" and row["reason"] == ("missing lead(s): V2, V3, V4, V5, V6 "
                                                                 "(channels in the file: I (mV), II (mV), V1 (mV))")
    assert not (tmp_path / "o.parquet").exists()
    # a header whose signal file lies outside its folder: listed as rejected, the file never read
    (tmp_path / "crafted").mkdir()
    write_record(tmp_path / "crafted", "r2", np.full((5000, 12), 100, np.int16), 500,
                 ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"])
    (tmp_path / "outside.dat").write_bytes((tmp_path / "crafted" / "r2.dat").read_bytes())
    hea = tmp_path / "crafted" / "r2.hea"
    hea.write_text(hea.read_text().replace("r2.dat", "../outside.dat"))
    run = _cli("embed", "--model", demo_model, "--input", tmp_path / "crafted", "--out", tmp_path / "c.parquet")
    assert run.returncode == 0, run.stderr
    row = pd.read_parquet(tmp_path / "c.parquet").iloc[0]
    assert row["status"] == "rejected" and "'../outside.dat' named in the header is not a file beside" in row["reason"]


def test_predict_writes_a_probability_per_task(demo_model, wfdb_folder, tmp_path):
    from ecgfm.finetune import new_classifier, predict_logits, save_classifier
    config = json.loads((demo_model / "config.json").read_text())
    spec = {"kind": "vit", "architecture": config["architecture"]}
    model = new_classifier(spec, 4, demo_model, seed=1)
    save_classifier(model, tmp_path / "ft", {**spec, "tasks": TASKS, "preprocessing": config["preprocessing"]})
    run = _cli("predict", "--model", tmp_path / "ft", "--input", wfdb_folder, "--out", tmp_path / "p.csv")
    assert run.returncode == 0, run.stderr
    frame = pd.read_csv(tmp_path / "p.csv")
    assert list(frame.columns) == ["record_id", "status", "reason", "leads_present", "leads_derived", "leads_zeroed",
                                   *TASKS] and len(frame) == 12
    assert frame[TASKS].apply(lambda c: c.between(0, 1)).all().all()
    reader = make_reader("wfdb", wfdb_folder, "x")
    raw = reader.load(reader.items()[0][0])
    ecg, _ = standardize_record(raw.signal, raw.fs, raw.lead_names, raw.unit, Settings())
    expected = torch.sigmoid(torch.from_numpy(predict_logits(model.eval(), ecg[None]))).numpy()[0]
    np.testing.assert_allclose(frame.iloc[0][TASKS].to_numpy(float), expected, atol=2e-6)


def test_short_code_exams_are_rejected_or_padded_on_request(demo_model, wfdb_folder, tmp_path):
    import h5py

    from ecgfm.standardize import resample
    reader = make_reader("wfdb", wfdb_folder, "x")
    raw = reader.load(reader.items()[0][0])
    seven = resample(raw.signal.T.astype(np.float32), raw.fs, 400.0)[:, :2800].T     # 7 s at 400 Hz
    tracing = np.zeros((1, 4096, 12), np.float32)
    tracing[0, 648:648 + 2800] = seven                   # CODE-15%'s zero padding on both sides
    with h5py.File(tmp_path / "exams.hdf5", "w") as f:
        f["tracings"] = tracing
        f["exam_id"] = np.array([77])
    run = _cli("embed", "--model", demo_model, "--input", tmp_path / "exams.hdf5", "--out", tmp_path / "a.parquet")
    row = pd.read_parquet(tmp_path / "a.parquet").iloc[0]
    assert run.returncode == 0 and row["status"] == "rejected" and row["reason"].startswith("too short: 7.00 s")
    run = _cli("embed", "--model", demo_model, "--input", tmp_path / "exams.hdf5", "--out", tmp_path / "b.parquet",
               "--pad-short")
    row = pd.read_parquet(tmp_path / "b.parquet").iloc[0]
    assert row["record_id"] == "77" and row["status"] == "ok" and row["reason"] == "zero-padded 750 samples to 10 s"


def test_api_embeds_records_of_a_project_reader(demo_model, tmp_path):
    from ecgfm import load_encoder
    from ecgfm.demo import write_demo_source
    from ecgfm.inference import InputOptions, embed_records
    counts = write_demo_source("code15", tmp_path / "code", n_patients=5, seed=4, missing_waveforms=1)
    reader = make_reader("code15", tmp_path / "code", "mine")
    table = embed_records(load_encoder(demo_model), reader, options=InputOptions(pad_short=True))
    assert len(table) == counts["metadata_rows"]
    missing = table[table["reason"].str.startswith("no waveform")]
    assert len(missing) == 1 and missing["embedding"].isna().all()
    ok = table[table["status"] == "ok"]
    assert len(ok) == len(table) - 1 and all(e.shape == (32,) for e in ok["embedding"])


def test_embed_goes_through_a_folder_of_good_and_broken_files_of_every_format(demo_model, tmp_path):
    """`ecgfm embed` on a folder where files of every format are broken in the ways real exports
    are: exit 0, one row per record, each broken one with its reason (tests/ecg_files.py)."""
    from ecg_files import write_mixed_folder
    from ecgfm.demo import make_patients, synth_ecg
    rng = np.random.default_rng(6)
    expected = write_mixed_folder(tmp_path / "in", synth_ecg(make_patients(1, rng)[0], 500, 10.0, rng))
    run = _cli("embed", "--model", demo_model, "--input", tmp_path / "in", "--out", tmp_path / "e.parquet")
    assert run.returncode == 0, run.stderr
    frame = pd.read_parquet(tmp_path / "e.parquet").set_index("record_id")
    assert sorted(frame.index) == sorted(expected)
    assert dict(frame["status"]) == {record_id: status for record_id, (status, _) in expected.items()}
    for record_id, (_, pattern) in expected.items():
        assert re.search(pattern, frame.loc[record_id, "reason"]), (record_id, frame.loc[record_id, "reason"])
    ok = sum(status == "ok" for status, _ in expected.values())
    assert f"{ok} records embedded, {len(expected) - ok} rejected" in run.stderr


def _outcomes(path, options):
    from ecgfm.inference import open_input
    preprocessing = {"fs": 250, "seconds": 10.0, "leads": list(CANONICAL_LEADS)}
    _, total, outcomes = open_input(path, preprocessing, options)
    rows = [(o.record_id, o.reason, None if o.ecg is None else o.ecg.tobytes()) for o in outcomes]
    assert len(rows) == total
    return rows


def test_reading_in_worker_processes_gives_the_same_rows_in_the_same_order(tmp_path, monkeypatch):
    """Files read by 2 forked processes, 2 files a chunk: every row (id, reason, samples) and their
    order as read in one process, broken files of every format included."""
    from ecg_files import write_mixed_folder
    from ecgfm import inference
    from ecgfm.demo import make_patients, synth_ecg
    rng = np.random.default_rng(7)
    expected = write_mixed_folder(tmp_path / "in", synth_ecg(make_patients(1, rng)[0], 500, 10.0, rng))
    serial = _outcomes(tmp_path / "in", inference.InputOptions(workers=1))
    monkeypatch.setattr(inference, "READ_CHUNK", 2)
    parallel = _outcomes(tmp_path / "in", inference.InputOptions(workers=2))
    assert sorted(r[0] for r in serial) == sorted(expected)
    assert parallel == serial


class _DiesInAWorker:
    """A reader whose files kill the process reading them, unless it is the parent: a C library
    crashing inside a reading process."""

    def __init__(self, inner, parent):
        self.inner, self.parent = inner, parent

    def items(self):
        return self.inner.items()

    def load(self, item):
        import os
        if os.getpid() != self.parent and item.record_id.endswith("3"):
            os._exit(1)
        return self.inner.load(item)


def test_a_reading_process_that_dies_costs_no_record(wfdb_folder, monkeypatch, caplog):
    """A worker that dies mid-run: the files it had not returned are read in this process, and
    every record still comes out once, in order, as without workers."""
    import os

    from ecgfm import inference
    reader = inference.FileReader(wfdb_folder)
    serial = _outcomes(_DiesInAWorker(reader, os.getpid()), inference.InputOptions(workers=1))
    monkeypatch.setattr(inference, "READ_CHUNK", 4)
    parallel = _outcomes(_DiesInAWorker(reader, os.getpid()), inference.InputOptions(workers=2))
    assert any(r[0].endswith("3") for r in serial)
    assert parallel == serial
    assert "a reading process died" in caplog.text


def test_a_folder_of_only_files_ecgfm_does_not_read_says_what_it_holds(tmp_path):
    """EDF files alone are an input wrong as a whole: the error names what was found."""
    from ecgfm.inference import InputError, open_input
    (tmp_path / "a.edf").write_bytes(b"0       " + b" " * 248)
    with pytest.raises(InputError, match=r"no records found .* 1 file\(s\) of formats ecgfm does not read, e\.g\. a\.edf: EDF"):
        open_input(tmp_path, {"fs": 250, "seconds": 10.0, "leads": list(CANONICAL_LEADS)})
