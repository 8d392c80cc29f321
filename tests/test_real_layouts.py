"""IKEM and SaMi-Trop archives built from real PTB-XL 500 Hz ECGs in the archives' real layouts
(lead order, rate, padding, dtype, metadata columns), standardized with the shipped config.yaml,
and checked lead by lead against the source ECG standardized directly."""
import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.signal import resample_poly

from conftest import REPO
from ecgfm.config import load_config, standardize_block
from ecgfm.corpus import standardize_source
from ecgfm.demo import IKEM_SAMPLES, IKEM_STORED_LEADS, ikem_tracing, write_ikem_archive
from ecgfm.leads import CANONICAL_LEADS, lead_index
from ecgfm.readers import make_reader
from ecgfm.shards import ShardReader
from ecgfm.standardize import Settings, standardize_record
from ecgfm.wfdb import read_record

N_RECORDS = 24
CODE_ORDER = ["DI", "DII", "DIII", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


@pytest.fixture(scope="module")
def ptbxl_500(ptbxl_real):
    """(ecg_id, [5000, 12] mV in canonical order, metadata row) of the first real 500 Hz records."""
    db = pd.read_csv(ptbxl_real / "ptbxl_database.csv").set_index("ecg_id")
    out = []
    for ecg_id in db.index:
        path = ptbxl_real / db.loc[ecg_id, "filename_hr"]
        if not path.with_suffix(".hea").exists():
            continue
        signal, header = read_record(path)
        index = lead_index([s.name for s in header.signals])
        out.append((int(ecg_id), signal[:, [index[lead] for lead in CANONICAL_LEADS]], db.loc[ecg_id]))
        if len(out) == N_RECORDS:
            return out
    raise AssertionError("fewer real 500 Hz records than expected")


def _shipped(source):
    config = load_config(REPO / "config.yaml")
    return config["sources"][source].get("reader_options", {}), standardize_block(config, source)


def _standardize(source, raw, out):
    options, block = _shipped(source)
    reader = make_reader(config_reader(source), raw, source, options)
    settings = Settings.from_config(block, expected_fs=reader.expected_fs)
    summary = standardize_source(reader, out, source, settings, shard_size=64, threads=1, progress=False)
    return summary, ShardReader(out), settings


def config_reader(source):
    return load_config(REPO / "config.yaml")["sources"][source]["reader"]


def mismatched_leads(got: np.ndarray, expected: np.ndarray, max_abs_mv: float, max_rel_rms: float,
                     edge: int = 50) -> list[str]:
    """The leads of a standardized record [12, n] that depart from the expected one: relative RMS
    error over the record, largest error away from its first and last ``edge`` samples (where two
    resampling chains see different things beyond the recording)."""
    diff = got.astype(np.float64) - expected
    rel = np.sqrt((diff**2).mean(axis=1)) / np.sqrt((expected.astype(np.float64) ** 2).mean(axis=1))
    worst = np.abs(diff[:, edge:-edge]).max(axis=1)
    return [lead for lead, r, w in zip(CANONICAL_LEADS, rel, worst) if r > max_rel_rms or w > max_abs_mv]


def _ikem_archive(records, dest, stored_leads=IKEM_STORED_LEADS):
    """IKEM's layout from real ECGs: every fifth recording shortened to 7.8 s (end-padded, its true
    length in real_lengths), the others 10 s centre-cropped to 4,096 samples; age and sex unknown
    (-1) for the third record. Returns {exam_id: the source samples IKEM keeps, [n, 12] mV}."""
    tracings, exams, kept = [], [], {}
    for k, (ecg_id, ecg, row) in enumerate(records):
        if k % 5 == 4:
            ecg = ecg[:3900]
        tracings.append(ikem_tracing(ecg, stored_leads=stored_leads))
        start = (len(ecg) - IKEM_SAMPLES) // 2 if len(ecg) > IKEM_SAMPLES else 0
        kept[str(ecg_id)] = ecg[start : start + IKEM_SAMPLES]
        unknown = k == 2
        exams.append({"exam_id": ecg_id, "acquisition_date": str(row["recording_date"]),
                      "patient_id": int(row["patient_id"]), "age": -1 if unknown else int(row["age"]),
                      "is_male": -1 if unknown else 1 - int(row["sex"]), "weight": -1, "height": -1,
                      "ventricular_rate": 70, "atrial_rate": 70})
    write_ikem_archive(dest, tracings, exams)
    return kept


def test_ikem_layout_from_real_ecgs_is_standardized_lead_by_lead(ptbxl_500, tmp_path):
    kept = _ikem_archive(ptbxl_500, tmp_path / "raw")
    with h5py.File(tmp_path / "raw" / "exams_part_0.hdf5") as f:       # the layout itself
        assert f["tracings"].dtype == np.int16 and f["tracings"].shape == (N_RECORDS, 4096, 8)
        assert set(f) == {"exam_id", "hashes", "real_lengths", "tracings"}
        assert max(f["real_lengths"][:]) == 4096 and min(f["real_lengths"][:]) == 3900
    summary, shards, settings = _standardize("ikem", tmp_path / "raw", tmp_path / "std")
    manifest = shards.manifest
    assert summary["kept"] == N_RECORDS and summary["quarantined"] == 0       # nothing lost to "too short"
    assert set(manifest["qc_padded_samples"]) == {round(2500 - 4096 / 2), round(2500 - 3900 / 2)}
    got = shards.read(np.arange(len(manifest)))
    for k, record_id in enumerate(manifest["record_id"]):
        expected, _ = standardize_record(kept[record_id], 500, list(CANONICAL_LEADS), "mV", settings)
        assert mismatched_leads(got[k], expected, max_abs_mv=0.01, max_rel_rms=0.05) == [], record_id
    # ids, patients, sex and age as the metadata says; -1 stays unknown
    rows = {str(ecg_id): row for ecg_id, _, row in ptbxl_500}
    for _, m in manifest.iterrows():
        row = rows[m["record_id"]]
        assert m["patient_id"] == f"ikem:{int(row['patient_id'])}"
        if m["record_id"] == str(ptbxl_500[2][0]):
            assert pd.isna(m["age"]) and pd.isna(m["sex"])
        else:
            assert m["age"] == row["age"] and m["sex"] == ("M" if row["sex"] == 0 else "F")
    assert (manifest["stored_leads"] == 8).all() and np.allclose(manifest["mv_per_unit"], 0.00488)


def test_a_wrong_ikem_lead_order_passes_qc_but_not_the_lead_by_lead_check(ptbxl_500, tmp_path):
    """The silent error: columns 0 and 1 taken as I and II. The limb-lead residual cannot see it
    (the other limb leads are derived from those columns), only a comparison with the source can."""
    records = ptbxl_500[:6]
    kept = _ikem_archive(records, tmp_path / "raw", stored_leads=["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"])
    summary, shards, settings = _standardize("ikem", tmp_path / "raw", tmp_path / "std")
    assert summary["kept"] == len(records)                                   # QC passes ...
    assert (shards.manifest["qc_limb_residual"] < 0.05).all()
    got = shards.read(np.arange(len(records)))
    expected, _ = standardize_record(kept[shards.manifest["record_id"][0]], 500, list(CANONICAL_LEADS), "mV",
                                     settings)
    wrong = mismatched_leads(got[0], expected, max_abs_mv=0.01, max_rel_rms=0.05)
    assert {"I", "II", "III", "aVR", "aVL", "aVF", "V5", "V6"} <= set(wrong)  # ... the check does not


def _samitrop_archive(records, dest):
    """SaMi-Trop's layout from real ECGs: 400 Hz float32 mV in the CODE lead order, 10 s (every
    fifth 7 s) zero-padded on both sides to 4,096; exams.hdf5 holds only tracings, in CSV order."""
    dest.mkdir(parents=True)
    tracings, exams, sources = [], [], {}
    for k, (ecg_id, ecg, row) in enumerate(records):
        if k % 5 == 4:
            ecg = ecg[750 : 750 + 3500]                                 # a 7 s exam
        sources[str(ecg_id)] = ecg
        at_400 = resample_poly(ecg, 4, 5, axis=0).astype(np.float32)   # canonical = the CODE order
        pad = 4096 - len(at_400)
        tracings.append(np.pad(at_400, ((pad // 2, pad - pad // 2), (0, 0))))
        exams.append({"exam_id": 3000000 + ecg_id, "age": int(row["age"]), "is_male": row["sex"] == 0,
                      "normal_ecg": False, "death": k % 7 == 0, "timey": 2.0,
                      "nn_predicted_age": float(row["age"])})
    with h5py.File(dest / "exams.hdf5", "w") as f:
        f.create_dataset("tracings", data=np.stack(tracings))
    frame = pd.DataFrame(exams)
    frame.to_csv(dest / "exams.csv", index=False)
    return sources, frame


def test_samitrop_layout_from_real_ecgs_is_standardized_lead_by_lead(ptbxl_500, tmp_path):
    sources, exams = _samitrop_archive(ptbxl_500, tmp_path / "raw")
    assert _shipped("samitrop")[0]["lead_names"] == CODE_ORDER
    summary, shards, settings = _standardize("samitrop", tmp_path / "raw", tmp_path / "std")
    manifest = shards.manifest
    assert summary["kept"] == N_RECORDS and list(manifest["record_id"]) == [str(e) for e in exams["exam_id"]]
    got = shards.read(np.arange(len(manifest)))
    for k, (ecg_id, _, row) in enumerate(ptbxl_500):
        expected, _ = standardize_record(sources[str(ecg_id)], 500, list(CANONICAL_LEADS), "mV", settings)
        assert mismatched_leads(got[k], expected, max_abs_mv=0.01, max_rel_rms=0.02) == [], ecg_id
        assert manifest["age"][k] == row["age"] and manifest["sex"][k] == ("M" if row["sex"] == 0 else "F")
        assert manifest["patient_id"][k] == f"samitrop:exam{3000000 + ecg_id}"
    assert (manifest["orig_samples"] == [2800 if k % 5 == 4 else 4000 for k in range(N_RECORDS)]).all()


def test_samitrop_rows_follow_the_csv_even_when_the_csv_is_not_sorted(ptbxl_500, tmp_path):
    """Row i of exams.hdf5 is CSV row i: a CSV out of exam_id order must not be sorted first."""
    sources, exams = _samitrop_archive(ptbxl_500[:5], tmp_path / "raw")
    with h5py.File(tmp_path / "raw" / "exams.hdf5", "r+") as f:       # both sides in descending exam_id
        f["tracings"][...] = f["tracings"][:][::-1]
    exams.iloc[::-1].to_csv(tmp_path / "raw" / "exams.csv", index=False)
    summary, shards, settings = _standardize("samitrop", tmp_path / "raw", tmp_path / "std")
    got = shards.read(np.arange(5))
    for k, exam_id in enumerate(shards.manifest["record_id"]):
        ecg_id = int(exam_id) - 3000000
        expected, _ = standardize_record(sources[str(ecg_id)], 500, list(CANONICAL_LEADS), "mV", settings)
        assert mismatched_leads(got[k], expected, max_abs_mv=0.01, max_rel_rms=0.02) == []
