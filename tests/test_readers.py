"""Readers on fixtures in the exact real formats (written by ecgfm.demo) and on the real data."""
import numpy as np
import pandas as pd
import pytest

from conftest import shared_or_skip
from ecgfm.corpus import standardize_source
from ecgfm.demo import write_demo_source
from ecgfm.readers import make_reader, strip_zero_padding
from ecgfm.shards import ShardReader
from ecgfm.standardize import Settings
from ecgfm.wfdb import read_record

CODE_LEADS = {"lead_names": ["DI", "DII", "DIII", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]}


def _run(layout, root, out, options=None, threads=1, shard_size=16, **settings):
    reader = make_reader(layout, root, layout, options)
    summary = standardize_source(reader, out, layout, Settings(expected_fs=reader.expected_fs, **settings),
                                 shard_size=shard_size, threads=threads, progress=False)
    return summary, pd.read_parquet(out / "manifest.parquet"), pd.read_parquet(out / "quarantine.parquet")


@pytest.mark.parametrize("layout,options,settings", [
    ("ptbxl", None, {}), ("mimic", None, {}), ("code15", CODE_LEADS, {"pad_short": True}),
    ("samitrop", CODE_LEADS, {"pad_short": True}), ("ikem", None, {}), ("ukb", None, {}), ("wfdb", None, {})])
def test_every_reader_on_its_real_format(tmp_path, layout, options, settings):
    counts = write_demo_source(layout, tmp_path / "raw", n_patients=12, seed=3)
    summary, manifest, quarantine = _run(layout, tmp_path / "raw", tmp_path / "std", options, **settings)
    assert summary["records_in"] == counts["metadata_rows"]
    assert len(manifest) == counts["records"]
    assert len(manifest) + len(quarantine) == counts["metadata_rows"]
    assert all(r.startswith("no waveform") for r in quarantine["reason"])
    assert manifest["patient_id"].str.startswith(f"{layout}:").all()
    assert manifest["patient_id"].nunique() <= 12
    ecg = ShardReader(tmp_path / "std").read(np.arange(len(manifest)))
    assert ecg.shape == (len(manifest), 12, 2500)
    assert 0.3 < manifest["qc_peak_to_peak_mv"].median() < 3          # mV, not uV or V
    assert manifest["qc_limb_residual"].max() < 0.05                  # Einthoven/Goldberger hold
    if layout in ("ptbxl", "code15", "ukb", "wfdb"):
        assert manifest["age"].notna().all() and set(manifest["sex"]) <= {"M", "F"}


def test_code15_rows_are_matched_by_exam_id_not_position(tmp_path):
    import h5py
    write_demo_source("code15", tmp_path, n_patients=8, seed=5)
    exams = pd.read_csv(tmp_path / "exams.csv")
    with h5py.File(tmp_path / "exams_part0.hdf5") as f:
        ids, tracings = f["exam_id"][:], f["tracings"][:]
    assert ids[-1] == 0 and not tracings[-1].any()                     # the dummy row
    assert list(ids[:-1]) != list(exams["exam_id"][: len(ids) - 1])    # shuffled vs the CSV
    reader = make_reader("code15", tmp_path, "code15", CODE_LEADS)
    items, rejected = reader.items()
    item = items[3]
    rec = reader.load(item)
    row = int(np.flatnonzero(ids == int(item.record_id))[0])
    expected, stripped = strip_zero_padding(tracings[row])
    assert np.array_equal(rec.signal, expected) and rec.meta["zero_padding_stripped"] == stripped
    assert stripped in (96, 1296)                                      # 10 s or 7 s at 400 Hz
    assert len(rejected) == 1 and "not found" in rejected[0][1]


def test_ikem_derives_the_four_missing_limb_leads(tmp_path):
    write_demo_source("ikem", tmp_path, n_patients=2, seed=1)
    reader = make_reader("ikem", tmp_path, "ikem")
    rec = reader.load(reader.items()[0][0])
    sig = dict(zip(rec.lead_names, rec.signal.T))
    assert np.allclose(sig["III"], sig["II"] - sig["I"])
    assert np.allclose(sig["aVR"] + sig["aVL"] + sig["aVF"], 0, atol=1e-3)
    assert rec.fs == pytest.approx(409.6)                              # 4096 rows over 10 s


def test_ukb_parser_refuses_entity_expansion(tmp_path):
    from ecgfm.readers import RecordError
    bomb = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            "<CardiologyXML><StripData>&b;</StripData></CardiologyXML>")
    (tmp_path / "1000001_20205_2_0.xml").write_text(bomb)
    reader = make_reader("ukb", tmp_path, "ukb")
    with pytest.raises(RecordError, match="refused XML"):
        reader.load(reader.items()[0][0])


def test_wfdb_reader_matches_wfdb_package_on_real_records(ptbxl_real):
    wfdb = pytest.importorskip("wfdb")
    cinc = shared_or_skip("cinc2021-samples")
    for path in [ptbxl_real / "records500/00000/00001_hr", ptbxl_real / "records100/00000/00007_lr",
                 cinc / "E07500", cinc / "JS20000"]:
        ours, header = read_record(path)
        theirs, fields = wfdb.rdsamp(str(path))
        assert header.fs == fields["fs"] and [s.name for s in header.signals] == fields["sig_name"]
        assert np.allclose(ours, theirs, atol=1e-6)


def test_real_ptbxl_both_rates(ptbxl_real, tmp_path):
    summary, manifest, quarantine = _run("ptbxl", ptbxl_real, tmp_path / "hr", {"rate": 500}, keep_flagged=True)
    db = pd.read_csv(ptbxl_real / "ptbxl_database.csv")
    assert summary["records_in"] == len(db) == 21837
    assert sorted(manifest.record_id.astype(int)) == list(range(1, 501))    # the 500 Hz copy: ids 1-500
    assert len(quarantine) == 21837 - 500 and quarantine.reason.str.startswith("no waveform").all()
    assert manifest.strat_fold.between(1, 10).all() and manifest.scp_codes.str.startswith("{").all()

    # the whole 100 Hz copy, as config.yaml standardizes PTB-XL (keep_flagged)
    summary, manifest, quarantine = _run("ptbxl", ptbxl_real, tmp_path / "lr", {"rate": 100}, threads=2,
                                         shard_size=8192, keep_flagged=True)
    assert summary["records_in"] == 21837
    assert len(manifest) == 21799 and manifest.patient_id.nunique() == 18869
    assert len(quarantine) == 38 and quarantine.reason.str.startswith("no waveform").all()
    removed = {137, 139, 140, 141, 142, 143, 145, 456, 458, 459, 461, 462}   # gone in 1.0.3
    assert removed <= set(quarantine.record_id.astype(int))
    assert (manifest.strat_fold == 9).sum() == 2183 and (manifest.strat_fold == 10).sum() == 2198
    assert (manifest.qc_failed != "").sum() <= 5                      # kept, with their reasons
    assert manifest["qc_limb_residual"].median() < 0.01
    assert 0.5 < manifest["qc_peak_to_peak_mv"].median() < 2.0
    assert (manifest["orig_fs"] == 100).all()
    # the same records at both rates agree after standardization (both are the same ECG)
    hr = ShardReader(tmp_path / "hr")
    lr = ShardReader(tmp_path / "lr")
    i_hr = int(np.flatnonzero(hr.manifest.record_id == "1")[0])
    i_lr = int(np.flatnonzero(lr.manifest.record_id == "1")[0])
    a, b = hr.read([i_hr])[0], lr.read([i_lr])[0]
    assert np.corrcoef(a[1, 100:-100], b[1, 100:-100])[0, 1] > 0.9


def test_real_cinc2021_folder(tmp_path):
    cinc = shared_or_skip("cinc2021-samples")
    summary, manifest, quarantine = _run("wfdb", cinc, tmp_path)
    assert summary["records_in"] == 50
    assert len(manifest) + len(quarantine) == 50
    # two Chapman-Shaoxing records have exactly-zero precordial leads
    assert dict(zip(quarantine.record_id, quarantine.reason.str[:9])) == {
        "JS20004": "flat lead", "JS20008": "flat lead"}
    assert manifest["dx"].notna().all() and manifest["age"].notna().all()
