"""ECGs as they come: fewer leads, longer and shorter recordings, NumPy/CSV with a sidecar, DICOM
waveforms, MUSE XML, through `ecgfm embed`/`predict` and the Python API."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from ecg_files import write_dicom_ecg, write_muse_xml
from ecgfm.demo import make_patients, synth_ecg
from ecgfm.leads import CANONICAL_LEADS, restrict_to_leads
from ecgfm.standardize import Settings, standardize_record

LEADS = list(CANONICAL_LEADS)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ecgfm.cli", *map(str, args), "--quiet"], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})   # as the API here: on the CPU


def _ecg(seconds=10.0, fs=500, seed=0):
    """A synthetic 12-lead ECG [n, 12] in mV (Einthoven and Goldberger hold exactly)."""
    rng = np.random.default_rng(seed)
    return synth_ecg(make_patients(1, rng)[0], fs, seconds, rng)


def _embedding(model_dir, ecg, fs, keep=None):
    """The API's embedding of one ECG [n, 12] as the standardization of training gives it."""
    from ecgfm.encoder import load_encoder
    x, _ = standardize_record(ecg, fs, LEADS, "mV", Settings())
    if keep is not None:
        x = restrict_to_leads(x, keep)
    return load_encoder(model_dir).model.embed(__import__("torch").from_numpy(x[None])).detach().numpy()[0]


def _arrays(folder, records: dict, fs=500, layout="samples_leads"):
    """One .npy per record [samples, leads] and a folder sidecar."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, ecg in records.items():
        np.save(folder / f"{name}.npy", ecg if layout == "samples_leads" else ecg.T)
    (folder / "ecgfm.json").write_text(json.dumps({"fs": fs, "unit": "mV", "leads": LEADS, "layout": layout}))
    return folder


def test_fewer_leads_are_derived_or_declared_zeros_never_silently(demo_model, tmp_path):
    ecg = _ecg()
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "twelve.npy", ecg)
    (folder / "twelve.json").write_text(json.dumps({"fs": 500, "unit": "mV", "leads": LEADS}))
    eight = [LEADS.index(lead) for lead in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
    np.save(folder / "eight.npy", ecg[:, eight])
    (folder / "eight.json").write_text(json.dumps({"fs": 500, "unit": "mV",
                                                   "leads": ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]}))
    np.save(folder / "single.npy", ecg[:, [1]])
    (folder / "single.json").write_text(json.dumps({"fs": 500, "unit": "mV", "leads": ["II"]}))

    # default: the model's 12 leads; 8 independent leads give them all exactly, one lead is a rejection
    run = _cli("embed", "--model", demo_model, "--input", folder, "--out", tmp_path / "all.parquet")
    assert run.returncode == 0, run.stderr
    frame = pd.read_parquet(tmp_path / "all.parquet").set_index("record_id")
    assert frame.loc["eight", "leads_derived"] == "III,aVR,aVL,aVF" and frame.loc["eight", "status"] == "ok"
    np.testing.assert_allclose(frame.loc["eight", "embedding"], frame.loc["twelve", "embedding"], atol=1e-4)
    assert frame.loc["single", "status"] == "rejected"
    assert frame.loc["single", "reason"] == ("missing lead(s): I, III, aVR, aVL, aVF, V1, V2, V3, V4, V5, V6 "
                                             "(channels in the file: II)")

    # available: each record as it comes, what it lacks as declared zeros
    run = _cli("embed", "--model", demo_model, "--input", folder, "--out", tmp_path / "av.parquet", "--leads", "available")
    frame = pd.read_parquet(tmp_path / "av.parquet").set_index("record_id")
    single = frame.loc["single"]
    assert single["status"] == "ok" and single["leads_present"] == "II" and single["leads_derived"] == ""
    assert single["leads_zeroed"] == "I,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6"
    np.testing.assert_allclose(single["embedding"], _embedding(demo_model, ecg, 500, keep=["II"]), atol=1e-4)

    # declared leads: only these are used, even when the record has more; a record without one is rejected
    run = _cli("embed", "--model", demo_model, "--input", folder, "--out", tmp_path / "i2.parquet", "--leads", "I,II")
    frame = pd.read_parquet(tmp_path / "i2.parquet").set_index("record_id")
    twelve = frame.loc["twelve"]
    assert (twelve["leads_present"], twelve["leads_derived"], twelve["leads_zeroed"]) == (
        "I,II", "III,aVR,aVL,aVF", "V1,V2,V3,V4,V5,V6")
    np.testing.assert_allclose(twelve["embedding"], _embedding(demo_model, ecg, 500, keep=["I", "II"]), atol=1e-4)
    assert frame.loc["single", "reason"] == "declared lead(s) not in the record: I (channels in the file: II)"
    run = _cli("embed", "--model", demo_model, "--input", folder, "--out", tmp_path / "x.parquet", "--leads", "I,X9")
    assert run.returncode == 2 and "unknown lead name 'X9'" in run.stderr


def test_longer_records_are_embedded_by_sliding_windows(demo_model, tmp_path):
    from ecgfm.encoder import load_encoder
    from ecgfm.inference import InputOptions, embed_records
    ecg = _ecg(seconds=25.0)
    folder = _arrays(tmp_path / "in", {"long": ecg, "short": _ecg(seconds=8.0, seed=1)})
    encoder = load_encoder(demo_model)
    windows = embed_records(encoder, folder, options=InputOptions(window_stride_s=5.0, per_window=True))
    long = windows[windows["record_id"] == "long"]
    assert list(long["start_s"]) == [0.0, 5.0, 10.0, 15.0] and list(long["window"]) == [0, 1, 2, 3]
    x, _ = standardize_record(ecg, 500, LEADS, "mV", Settings(window_stride_s=5.0))
    assert x.shape == (4, 12, 2500)
    expected = encoder.model.embed(__import__("torch").from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(np.stack(long["embedding"]), expected, atol=1e-4)
    # the record's embedding is the mean of its windows'; the centre crop is no longer the only view
    pooled = embed_records(encoder, folder, options=InputOptions(window_stride_s=5.0)).set_index("record_id")
    np.testing.assert_allclose(pooled.loc["long", "embedding"], expected.mean(axis=0), atol=1e-5)
    assert pooled.loc["long", "windows"] == 4
    # shorter than the window: rejected, or padded and flagged
    assert pooled.loc["short", "status"] == "rejected" and pooled.loc["short", "reason"].startswith("too short: 8.00 s")
    padded = embed_records(encoder, folder, options=InputOptions(pad_short=True)).set_index("record_id")
    assert padded.loc["short", "status"] == "ok" and padded.loc["short", "reason"] == "zero-padded 500 samples to 10 s"


def test_a_window_that_fails_a_check_is_left_out_of_the_record_with_its_reason(demo_model, tmp_path):
    """25 s with NaN for its first 3 s: the window at 0 s fails (a 3 s NaN run), those at 5, 10
    and 15 s are the record's; per window, the one left out is a row with its reason."""
    from ecgfm.encoder import load_encoder
    from ecgfm.inference import InputOptions, embed_records
    ecg = _ecg(seconds=25.0, seed=4)
    ecg[: 3 * 500] = np.nan
    folder = _arrays(tmp_path / "in", {"late": ecg})
    encoder = load_encoder(demo_model)
    windows = embed_records(encoder, folder, options=InputOptions(window_stride_s=5.0, per_window=True))
    assert list(windows["start_s"]) == [0.0, 5.0, 10.0, 15.0] and list(windows["window"]) == [0, 1, 2, 3]
    assert list(windows["status"]) == ["rejected", "ok", "ok", "ok"]
    assert windows["reason"].tolist() == ["NaN run of 1500 samples (3.00 s) > 0.04 s", "", "", ""]
    assert windows["embedding"].iloc[0] is None
    pooled = embed_records(encoder, folder, options=InputOptions(window_stride_s=5.0)).iloc[0]
    assert pooled["status"] == "ok" and pooled["windows"] == 3 and pooled["windows_left_out"] == 1
    assert pooled["reason"] == "1 of 4 windows left out: window at 0 s: NaN run of 1500 samples (3.00 s) > 0.04 s"
    np.testing.assert_allclose(pooled["embedding"], np.stack(windows["embedding"].iloc[1:]).mean(axis=0), atol=1e-5)


def test_numpy_and_csv_with_a_sidecar_equal_the_same_ecg_in_wfdb(demo_model, tmp_path):
    from ecgfm.wfdb import write_record
    ecg = _ecg(seed=3)
    write_record(tmp_path / "wfdb", "r1", np.round(ecg * 1000).astype(np.int16), 500, LEADS, gain=1000.0)
    _arrays(tmp_path / "npy", {"r1": np.round(ecg * 1000) / 1000}, layout="leads_samples")
    (tmp_path / "csv").mkdir()
    pd.DataFrame(np.round(ecg * 1000) / 1000, columns=["DI", "DII", "DIII", "AVR", "AVL", "AVF", *LEADS[6:]]).to_csv(
        tmp_path / "csv" / "r1.csv", index=False)
    (tmp_path / "csv" / "r1.json").write_text(json.dumps({"fs": 500, "unit": "mV"}))   # leads from the header
    out = {}
    for kind in ("wfdb", "npy", "csv"):
        run = _cli("embed", "--model", demo_model, "--input", tmp_path / kind, "--out", tmp_path / f"{kind}.parquet")
        assert run.returncode == 0, run.stderr
        row = pd.read_parquet(tmp_path / f"{kind}.parquet").iloc[0]
        assert row["record_id"] == "r1" and row["status"] == "ok", row["reason"]
        out[kind] = row["embedding"]
    np.testing.assert_allclose(out["npy"], out["wfdb"], atol=1e-5)
    np.testing.assert_allclose(out["csv"], out["wfdb"], atol=1e-5)
    # a square array cannot say its layout; no sidecar is an error named in the row
    np.save(tmp_path / "npy" / "square.npy", np.zeros((12, 12)))
    (tmp_path / "npy" / "ecgfm.json").write_text(json.dumps({"fs": 500, "unit": "mV", "leads": LEADS}))
    np.save(tmp_path / "npy" / "r1.npy", ecg)
    (tmp_path / "bare").mkdir()
    np.save(tmp_path / "bare" / "x.npy", ecg)
    frame = pd.concat([pd.read_parquet(p) for p in _embed_all(demo_model, tmp_path, "npy", "bare")]).set_index("record_id")
    assert "set `layout`" in frame.loc["square", "reason"] and "no sidecar" in frame.loc["x", "reason"]


def _embed_all(model, root, *folders):
    for folder in folders:
        out = root / f"{folder}-all.parquet"
        assert _cli("embed", "--model", model, "--input", root / folder, "--out", out).returncode == 0
        yield out


def test_dicom_waveforms_read_as_the_standard_defines_them(demo_model, tmp_path):
    pytest.importorskip("pydicom", reason="pip install -e '.[formats]'")
    from pydicom import examples

    from ecgfm.formats import read_dicom
    ecg = _ecg(seed=4)
    path = write_dicom_ecg(tmp_path / "dcm" / "ecg1.dcm", ecg, 500, LEADS, sensitivity_uv=2.5, baseline_uv=-40.0,
                           correction=0.8, mdc_codes=("aVR", "V3"))
    raw = read_dicom(path)
    assert raw.lead_names == LEADS and raw.unit == "mV" and raw.fs == 500     # each channel to mV by its unit
    np.testing.assert_allclose(raw.signal, ecg, atol=0.0011)                 # one step of 2.5 x 0.8 uV, halved
    # the real 12-lead ECG DICOM file pydicom ships: 12 leads in SCP-ECG codes, 1 kHz, microvolts
    real = read_dicom(examples.get_path("waveform"))
    assert raw.lead_names == real.lead_names and real.fs == 1000 and real.signal.shape == (10000, 12)
    x, qc = standardize_record(real.signal, real.fs, real.lead_names, real.unit, Settings())
    assert x.shape == (12, 2500) and qc["qc_limb_residual"] < 0.1
    # through the command, beside a file that is no ECG
    (tmp_path / "dcm" / "note.dcm").write_bytes(b"not dicom")
    run = _cli("embed", "--model", demo_model, "--input", tmp_path / "dcm", "--out", tmp_path / "d.parquet")
    frame = pd.read_parquet(tmp_path / "d.parquet").set_index("record_id")
    assert frame.loc["ecg1", "status"] == "ok" and frame.loc["note", "reason"].startswith("unreadable: unreadable DICOM")
    np.testing.assert_allclose(frame.loc["ecg1", "embedding"], _embedding(demo_model, ecg, 500), atol=2e-3)


def test_muse_xml_with_its_eight_leads(demo_model, tmp_path):
    from ecgfm.formats import read_muse_xml
    ecg = _ecg(seed=5)
    eight = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    path = write_muse_xml(tmp_path / "muse" / "m1.xml", ecg[:, [LEADS.index(lead) for lead in eight]], 500, eight,
                          baseline=12)
    raw = read_muse_xml(path)
    assert raw.lead_names == eight and raw.fs == 500 and raw.unit == "uV" and raw.signal.shape == (5000, 8)
    np.testing.assert_allclose(raw.signal / 1000.0, ecg[:, [LEADS.index(lead) for lead in eight]], atol=0.0025)
    run = _cli("embed", "--model", demo_model, "--input", tmp_path / "muse", "--out", tmp_path / "m.parquet")
    row = pd.read_parquet(tmp_path / "m.parquet").iloc[0]
    assert row["status"] == "ok" and row["leads_derived"] == "III,aVR,aVL,aVF", row["reason"]
    np.testing.assert_allclose(row["embedding"], _embedding(demo_model, ecg, 500), atol=5e-3)   # 4.88 uV steps
    median, rhythm = path.read_text().split("<WaveformType>Rhythm</WaveformType>")     # the median beat is not read
    bad = median + "<WaveformType>Rhythm</WaveformType>" + rhythm.replace(
        "<LeadOffsetFirstSample>0</LeadOffsetFirstSample>", "<LeadOffsetFirstSample>4</LeadOffsetFirstSample>", 1)
    (tmp_path / "muse" / "m2.xml").write_text(bad, encoding="latin-1")
    run = _cli("embed", "--model", demo_model, "--input", tmp_path / "muse", "--out", tmp_path / "m.parquet")
    frame = pd.read_parquet(tmp_path / "m.parquet").set_index("record_id")
    assert "starts with invalid bytes" in frame.loc["m2", "reason"]


def test_predict_names_its_outputs_and_applies_the_stored_thresholds(demo_model, tmp_path):
    from ecgfm.finetune import new_classifier, save_classifier
    config = json.loads((demo_model / "config.json").read_text())
    spec = {"kind": "vit", "architecture": config["architecture"]}
    labels = [{"task": "MI", "name": "myocardial infarction", "scp_codes": ["AMI", "IMI"], "threshold": 0.5},
              {"task": "HYP", "name": "hypertrophy", "scp_codes": ["LVH"], "threshold": 0.0}]
    save_classifier(new_classifier(spec, 2, demo_model, seed=1), tmp_path / "ft",
                    {**spec, "tasks": ["MI", "HYP"], "labels": labels, "preprocessing": config["preprocessing"]})
    late = _ecg(seconds=20.0, seed=3)
    late[:, 7] = np.where(np.arange(len(late)) < 5000, 0.0, late[:, 7])      # V2 off for the first 10 s
    folder = _arrays(tmp_path / "in", {"a": _ecg(seconds=20.0), "b": _ecg(seed=2), "c": late})
    run = _cli("predict", "--model", tmp_path / "ft", "--input", folder, "--out", tmp_path / "p.csv",
               "--window-stride", "5")
    assert run.returncode == 0, run.stderr
    assert "3 records predicted, 0 rejected" in run.stderr
    assert "windows left out by quality checks: 1, of 1 record(s)" in run.stderr
    frame = pd.read_csv(tmp_path / "p.csv").set_index("record_id")
    assert list(frame.columns)[-4:] == ["MI", "HYP", "MI_positive", "HYP_positive"]
    assert (frame["MI_positive"] == (frame["MI"] >= 0.5).astype(int)).all() and (frame["HYP_positive"] == 1).all()
    assert frame.loc["a", "windows"] == 3 and np.isnan(frame.loc["b", "windows"])       # 0, 5, 10 s; 10 s: one
    assert frame.loc["a", "windows_left_out"] == 0 and (frame.loc["c", "windows"], frame.loc["c", "windows_left_out"]) == (2, 1)
    assert frame.loc["c", "reason"].startswith("1 of 3 windows left out: window at 0 s: flat lead(s) (std < 0.005 mV): V2")
    legend = json.loads((tmp_path / "p.csv.labels.json").read_text())
    assert legend == labels
    per_window = _cli("predict", "--model", tmp_path / "ft", "--input", folder, "--out", tmp_path / "w.csv",
                      "--window-stride", "5", "--per-window")
    assert per_window.returncode == 0, per_window.stderr
    windows = pd.read_csv(tmp_path / "w.csv")
    rows = windows[windows["record_id"] == "a"]
    assert list(rows["start_s"]) == [0.0, 5.0, 10.0]
    assert rows["MI"].mean() == pytest.approx(frame.loc["a", "MI"], abs=1e-6)     # the record's: their mean
    rows = windows[windows["record_id"] == "c"]
    assert list(rows["status"]) == ["rejected", "ok", "ok"] and rows["MI"].isna().tolist() == [True, False, False]
    assert rows["MI"].iloc[1:].mean() == pytest.approx(frame.loc["c", "MI"], abs=1e-6)
    assert "2 records predicted" not in per_window.stderr and "3 records predicted, 0 rejected" in per_window.stderr


def test_f1_threshold_hand_case():
    from ecgfm.metrics import f1_threshold
    # at 0.7: 2 of 2 positives with 1 false positive, F1 0.8 (0.9: 0.67, 0.8: 0.5, 0.1: 0.67)
    assert f1_threshold([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == 0.7
    assert f1_threshold([1, 1, 0], [0.5, 0.5, 0.2]) == 0.5                          # tied scores move together
