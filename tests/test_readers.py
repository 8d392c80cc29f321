"""Readers on fixtures in the exact real formats (written by ecgfm.demo) and on the real data."""
import numpy as np
import pandas as pd
import pytest

from conftest import shared_or_skip
from ecgfm.corpus import SourceError, standardize_source
from ecgfm.demo import write_demo_source
from ecgfm.leads import CANONICAL_LEADS
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
    ("samitrop", CODE_LEADS, {"pad_short": True}), ("ikem", None, {"pad_short": True}), ("ukb", None, {}),
    ("wfdb", None, {})])
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
    if layout in ("ptbxl", "code15", "samitrop", "ukb", "wfdb"):
        assert manifest["age"].notna().all() and set(manifest["sex"]) <= {"M", "F"}
    # every source's summary carries its amplitudes, lead by lead
    amplitude = summary["median_peak_to_peak_mv"]
    assert list(amplitude) == [*CANONICAL_LEADS, "all"] and 0.3 < amplitude["all"] < 3
    assert amplitude["all"] == pytest.approx(np.median([amplitude[lead] for lead in CANONICAL_LEADS]), abs=1e-3)


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


def test_ikem_reads_its_columns_by_lead_name_and_derives_the_limb_leads(tmp_path):
    import h5py
    write_demo_source("ikem", tmp_path, n_patients=2, seed=1)
    reader = make_reader("ikem", tmp_path, "ikem")
    item = reader.items()[0][0]
    rec = reader.load(item)
    with h5py.File(tmp_path / "exams_part_0.hdf5") as f:
        stored = f["tracings"][item.locator[1]].astype(np.float64) * 4.88
    sig = dict(zip(rec.lead_names, rec.signal.T.astype(np.float64)))
    for column, lead in enumerate(["V1", "V2", "V3", "V4", "V5", "V6", "I", "II"]):
        assert np.allclose(sig[lead], stored[: len(sig[lead]), column], atol=1e-3), lead
    assert np.allclose(sig["III"], sig["II"] - sig["I"], atol=1e-3)
    assert np.allclose(sig["aVR"] + sig["aVL"] + sig["aVF"], 0, atol=1e-3)
    assert rec.fs == 500 and rec.unit == "uV" and rec.signal.shape[0] == item.locator[2] <= 4096


def _edit_h5(path, name, values):
    import h5py
    with h5py.File(path, "r+") as f:
        data = f[name][:]
        del f[name]
        f.create_dataset(name, data=values(data))


def test_ikem_real_length_beyond_the_stored_samples_is_not_the_layout(tmp_path):
    counts = write_demo_source("ikem", tmp_path / "raw", n_patients=10, seed=2)
    _edit_h5(tmp_path / "raw" / "exams_part_0.hdf5", "real_lengths", lambda v: np.where(np.arange(len(v)) == 0, 5000, v))
    summary, manifest, quarantine = _run("ikem", tmp_path / "raw", tmp_path / "std", pad_short=True)
    assert len(manifest) == counts["records"] - 1
    assert list(quarantine["reason"].str.contains("real_length 5000 is not a length")) == [True]
    # the whole file so: the source stops instead of writing a corpus of rejects
    write_demo_source("ikem", tmp_path / "many", n_patients=40, seed=2)
    _edit_h5(tmp_path / "many" / "exams_part_0.hdf5", "real_lengths", lambda v: np.full_like(v, 5000))
    with pytest.raises(SourceError, match="real_length"):
        _run("ikem", tmp_path / "many", tmp_path / "std2", pad_short=True)


def test_ikem_unknown_age_and_sex_stay_missing(tmp_path):
    write_demo_source("ikem", tmp_path, n_patients=25, seed=6)
    exams = pd.read_csv(tmp_path / "exams.csv")
    assert list(exams.columns) == ["exam_id", "acquisition_date", "patient_id", "age", "is_male", "weight",
                                   "height", "ventricular_rate", "atrial_rate"]
    unknown = set(exams.loc[exams["is_male"] == -1, "exam_id"].astype(str))
    assert unknown and set(exams.loc[exams["age"] == -1, "exam_id"].astype(str)) == unknown
    items, _ = make_reader("ikem", tmp_path, "ikem").items()
    for item in items:
        missing = item.record_id in unknown
        assert (item.meta["age"] is None) == missing and (item.meta["sex"] is None) == missing
        assert missing or (item.meta["age"] > 0 and item.meta["sex"] in ("M", "F"))


def test_samitrop_maps_rows_by_csv_order_and_refuses_a_count_mismatch(tmp_path):
    import h5py
    write_demo_source("samitrop", tmp_path, n_patients=6, seed=7)
    with h5py.File(tmp_path / "exams.hdf5") as f:
        assert set(f) == {"tracings"}                                   # the real file holds nothing else
        tracings = f["tracings"][:]
    exams = pd.read_csv(tmp_path / "exams.csv")
    reader = make_reader("samitrop", tmp_path, "samitrop", CODE_LEADS)
    items, rejected = reader.items()
    assert [i.record_id for i in items] == [str(e) for e in exams["exam_id"]] and not rejected
    for k, item in enumerate(items):
        assert np.array_equal(reader.load(item).signal, strip_zero_padding(tracings[k])[0])
    # a repeated exam_id keeps its first row; the repeat is quarantined, not lost
    exams.loc[3, "exam_id"] = exams.loc[1, "exam_id"]
    exams.to_csv(tmp_path / "exams.csv", index=False)
    items, rejected = make_reader("samitrop", tmp_path, "samitrop", CODE_LEADS).items()
    assert [i.locator[1] for i in items] == [0, 1, 2, 4, 5]
    assert rejected == [(str(exams.loc[1, "exam_id"]), f"duplicate exam_id {exams.loc[1, 'exam_id']}: CSV row 3 "
                                                     f"repeats row 1, whose tracing is kept")]
    # one CSV row too many: every later row would be paired with the wrong tracing
    pd.concat([exams, exams.tail(1).assign(exam_id=1)]).to_csv(tmp_path / "exams.csv", index=False)
    with pytest.raises(SourceError, match="6 tracings but exams.csv has 7 rows"):
        standardize_source(make_reader("samitrop", tmp_path, "samitrop", CODE_LEADS), tmp_path / "std",
                           "samitrop", Settings(pad_short=True), shard_size=8, progress=False)


def test_code15_reader_refuses_a_file_without_exam_ids(tmp_path):
    from ecgfm.readers import ArchiveError
    write_demo_source("samitrop", tmp_path, n_patients=3, seed=7)
    with pytest.raises(ArchiveError, match="no exam_id dataset"):
        make_reader("code15", tmp_path, "code15", {**CODE_LEADS, "hdf5_glob": "exams.hdf5"}).items()


def test_ukb_resolution_unit_is_read_not_assumed(tmp_path):
    from ecgfm.demo import synth_ecg, make_patients, ukb_xml
    from ecgfm.readers import RecordError
    p = make_patients(1, np.random.default_rng(0))[0]
    xml = ukb_xml(1000001, synth_ecg(p, 500, 10.0, np.random.default_rng(1)), 500, 60, True)
    (tmp_path / "1000001_20205_2_0.xml").write_text(xml)
    (tmp_path / "1000002_20205_2_0.xml").write_text(xml.replace('units="uVperLsb"', 'units="mVperLsb"'))
    reader = make_reader("ukb", tmp_path, "ukb")
    good, bad = reader.items()[0]
    assert reader.load(good).meta["mv_per_unit"] == pytest.approx(0.005)
    with pytest.raises(RecordError, match="units='mVperLsb'"):
        reader.load(bad)


def test_names_inside_an_archive_cannot_lead_outside_it(tmp_path):
    """A WFDB header naming ../../etc/passwd as its signal file, and metadata tables whose record
    paths are absolute or climb out: refused with a reason, never opened."""
    from ecgfm.readers import unsafe_relative_path
    from ecgfm.wfdb import WfdbError
    write_demo_source("wfdb", tmp_path / "wfdb", n_patients=2, seed=1)
    secret = tmp_path / "secret.dat"
    secret.write_bytes(np.zeros(12 * 5000, np.int16).tobytes())
    hea = tmp_path / "wfdb" / "S00001.hea"
    hea.write_text(hea.read_text().replace("S00001.mat", "../secret.dat").replace("16x1+24", "16"))
    with pytest.raises(WfdbError, match="not a file beside the header"):
        read_record(tmp_path / "wfdb" / "S00001")
    summary, manifest, quarantine = _run("wfdb", tmp_path / "wfdb", tmp_path / "std-wfdb")
    assert list(quarantine["record_id"]) == ["S00001"] and "refused" in quarantine["reason"][0]

    write_demo_source("mimic", tmp_path / "mimic", n_patients=3, seed=1, missing_waveforms=0)
    records = pd.read_csv(tmp_path / "mimic" / "record_list.csv")
    records.loc[0, "path"] = "../../secret"
    records.loc[1, "path"] = str(tmp_path / "secret")
    records.to_csv(tmp_path / "mimic" / "record_list.csv", index=False)
    items, rejected = make_reader("mimic", tmp_path / "mimic", "mimic").items()
    assert len(items) == len(records) - 2
    assert [r for _, r in rejected] == ["unsafe path: path '../../secret' leaves its folder (..); not followed",
                                        f"unsafe path: path '{tmp_path / 'secret'}' is absolute; not followed"]
    assert unsafe_relative_path("records500/00000/00001_hr") is None
    assert unsafe_relative_path("C:/x") and unsafe_relative_path("a\\..\\b")


def test_amplitude_scale_corrects_a_source_and_the_summary_shows_it(tmp_path):
    """CODE-15% users report amplitudes twice the usual: the summary shows a 2x source at a glance,
    and standardize.amplitude_scale brings it back."""
    import h5py
    write_demo_source("code15", tmp_path / "raw", n_patients=20, seed=8)
    plain, _, _ = _run("code15", tmp_path / "raw", tmp_path / "plain", CODE_LEADS, pad_short=True)
    with h5py.File(tmp_path / "raw" / "exams_part0.hdf5", "r+") as f:
        f["tracings"][...] = f["tracings"][:] * 2
    doubled, _, _ = _run("code15", tmp_path / "raw", tmp_path / "doubled", CODE_LEADS, pad_short=True)
    fixed, manifest, _ = _run("code15", tmp_path / "raw", tmp_path / "fixed", CODE_LEADS, pad_short=True,
                              amplitude_scale=0.5)
    for lead in CANONICAL_LEADS:
        assert doubled["median_peak_to_peak_mv"][lead] == pytest.approx(2 * plain["median_peak_to_peak_mv"][lead],
                                                                        rel=1e-3)
        assert fixed["median_peak_to_peak_mv"][lead] == pytest.approx(plain["median_peak_to_peak_mv"][lead], rel=1e-3)
    assert fixed["settings"]["amplitude_scale"] == 0.5


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
    # the amplitude reference the README quotes (every source's summary is read against it)
    amplitude = summary["median_peak_to_peak_mv"]
    assert 0.8 < amplitude["all"] < 1.3 and amplitude["V2"] > amplitude["aVL"]
    print("PTB-XL 100 Hz median peak-to-peak (mV):", amplitude)
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


# --- format facts, each as the format's owner defines it ------------------------------------------
from pathlib import Path  # noqa: E402

from ecg_files import (LEADS12, write_aecg, write_dicom_ecg, write_multisegment, write_muse_xml,  # noqa: E402
                       write_philips_xml, write_wfdb_212)

DATA = Path(__file__).parent / "data"
PREPROCESSING = {"fs": 250, "seconds": 10, "leads": LEADS12}


def _synthetic(seconds=10.0, fs=500, seed=0):
    from ecgfm.demo import make_patients, synth_ecg
    rng = np.random.default_rng(seed)
    return synth_ecg(make_patients(1, rng)[0], fs, seconds, rng)


def _rows(path, options=None):
    from ecgfm.inference import InputOptions, open_input
    _, _, outcomes = open_input(path, PREPROCESSING, options or InputOptions())
    return {o.record_id: o for o in outcomes}


def test_wfdb_skew_and_format_212_with_an_odd_count(tmp_path):
    """header(5): a signal of skew s has its sample t in frame t + s; signal(5): 212 with an odd
    number of samples ends in 2 bytes. Both as wfdb.rdsamp reads them."""
    wfdb = pytest.importorskip("wfdb")
    digital = np.round(_synthetic()[:1001, :3] * 200).astype(int)          # 3 x 1001: odd
    write_wfdb_212(tmp_path, "skewed", digital, 500, ["I", "II", "V1"], skews=[0, 3, 0])
    ours, header = read_record(tmp_path / "skewed")
    assert [s.skew for s in header.signals] == [0, 3, 0]
    np.testing.assert_allclose(ours[:-3], digital[:-3] / 200.0, atol=1e-6)    # lead II where it belongs
    assert np.isnan(ours[-3:, 1]).all() and np.isnan(ours).sum() == 3        # past the file: invalid
    np.testing.assert_allclose(ours, wfdb.rdrecord(str(tmp_path / "skewed")).p_signal, atol=1e-6)


def test_wfdb_python_sample_files_310_311_and_odd_212():
    """Real files of wfdb-python's sample data (tests/data/README.md), against wfdb.rdsamp."""
    wfdb = pytest.importorskip("wfdb")
    for name, shape in [("100_3chan", (999, 3)), ("310derive_3", (1018, 1)), ("311derive_3", (1019, 1))]:
        ours, header = read_record(DATA / "wfdb-python" / name)
        theirs = wfdb.rdrecord(str(DATA / "wfdb-python" / name)).p_signal
        assert ours.shape == shape
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_wfdb_formats_24_and_32_subtract_the_baseline_in_integers(tmp_path):
    digital = np.array([[2**30 + 7, -(2**30) + 3], [2**30 - 5, -(2**30) - 9]], dtype="<i4")
    (tmp_path / "r.dat").write_bytes(digital.tobytes())
    (tmp_path / "r.hea").write_text(f"r 2 500 2\nr.dat 32 1000({2**30})/mV 32 0 0 0 0 I\n"
                                    f"r.dat 32 1000(-{2**30})/mV 32 0 0 0 0 II\n")
    ours, _ = read_record(tmp_path / "r")
    np.testing.assert_array_equal(ours, np.array([[0.007, 0.003], [-0.005, -0.009]], dtype=np.float32))


def test_wfdb_byte_offset_is_the_signal_files(tmp_path):
    """signal(5): the byte offset skips bytes at the start of a signal file, for all its signals
    (a CinC ``.mat`` file's MATLAB header); a signal line that repeats the file without it reads
    the same file (the first signal's offset counts, as wfdb.rdsamp takes it)."""
    wfdb = pytest.importorskip("wfdb")
    digital = np.round(_synthetic()[:, :2] * 1000).astype("<i2")
    (tmp_path / "m.mat").write_bytes(bytes(range(24)) + digital.tobytes())
    (tmp_path / "m.hea").write_text("m 2 500 5000\nm.mat 16+24 1000/mV 16 0 0 0 0 I\nm.mat 16 1000/mV 16 0 0 0 0 II\n")
    ours, _ = read_record(tmp_path / "m")
    np.testing.assert_allclose(ours, digital / 1000.0, atol=1e-6)
    np.testing.assert_allclose(ours, wfdb.rdrecord(str(tmp_path / "m")).p_signal, atol=1e-6)


def test_wfdb_reasons_say_what_is_unsupported_and_name_no_absolute_path(tmp_path):
    from ecgfm.wfdb import write_record
    digital = np.zeros((5000, 2), dtype="<i2")
    for name, old, new in [("fmt8", " 16 1000", " 8 1000"), ("frames", " 16 1000", " 16x4 1000"),
                           ("badline", " 16 1000", " sixteen 1000")]:
        write_record(tmp_path, name, digital, 500, ["I", "II"])
        hea = tmp_path / f"{name}.hea"
        hea.write_text(hea.read_text().replace(old, new))
    rows = _rows(tmp_path)
    assert rows["fmt8"].reason == "unreadable: fmt8.hea: WFDB format 8 is not supported"
    assert rows["frames"].reason == "unreadable: frames.hea: 4 samples per frame is not supported"
    assert rows["badline"].reason == "unreadable: badline.hea: unreadable format field 'sixteen'"


def test_multisegment_record_is_one_row_judged_by_the_samples_it_uses(tmp_path):
    """header(5): a master header ``name/n`` lists segments; a layout header (length 0) names the
    signals; ``~`` is a null segment. A 45 s monitor record that starts with 15 s of nothing is one
    record, fine where its centre 10 s are, and equal to its signal there."""
    ecg = _synthetic(seconds=30.0)
    counts = np.round(ecg * 1000).astype("<i2")
    write_multisegment(tmp_path, "monitor", [500 * 15, counts[:7000], counts[7000:]], 500, LEADS12)
    rows = _rows(tmp_path)
    assert list(rows) == ["monitor"] and rows["monitor"].ecg is not None, rows["monitor"].reason
    assert [item.record_id for item in make_reader("wfdb", tmp_path, "x").items()[0]] == ["monitor"]  # training too
    signal, header = read_record(tmp_path / "monitor")
    assert signal.shape == (45 * 500, 12) and np.isnan(signal[: 15 * 500]).all()
    np.testing.assert_allclose(signal[15 * 500 :], counts / 1000.0, atol=1e-6)
    from ecgfm.standardize import standardize_record
    expected, _ = standardize_record(ecg[1250:6250], 500, LEADS12, "mV", Settings())    # 17.5-27.5 s
    np.testing.assert_allclose(rows["monitor"].ecg[:, 50:-50], expected[:, 50:-50], atol=1e-3)   # edges: filter


def test_a_monitor_record_with_a_null_segment_is_used_by_its_windows_after_it(tmp_path):
    """A 60 s multi-segment record at 360 Hz (MIT-BIH's rate) starting with a 20 s null segment:
    the centre crop (25-35 s) is fine; with windows every 5 s those at 0-15 s (NaN: the one at
    15 s holds 5 s = 1800 samples of it) are left out with their reasons, those from 20 s on are
    used, equal to the signal there; a record whose every window fails is rejected with the reasons."""
    from ecgfm.inference import InputOptions
    from ecgfm.standardize import standardize_record
    from ecgfm.wfdb import write_record
    ecg = _synthetic(seconds=40.0, fs=360)
    counts = np.round(ecg * 1000).astype("<i2")
    write_multisegment(tmp_path, "monitor", [360 * 20, counts[:7200], counts[7200:]], 360, LEADS12)
    dead = counts.copy()
    dead[:, LEADS12.index("V2")] = 0                                # V2 off throughout
    write_record(tmp_path, "dead", dead, 360, LEADS12, gain=1000.0)
    assert _rows(tmp_path)["monitor"].ecg is not None
    rows = _rows(tmp_path, InputOptions(window_stride_s=5.0))
    monitor = rows["monitor"]
    assert monitor.starts == [20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0] and monitor.ecg.shape == (7, 12, 2500)
    assert [start for start, _ in monitor.left_out] == [0.0, 5.0, 10.0, 15.0]
    assert monitor.left_out[3][1] == "NaN run of 1800 samples (5.00 s) > 0.04 s"
    assert monitor.window_note.startswith("4 of 11 windows left out: 3 windows at 0-10 s: NaN run of 3600 samples")
    expected, _ = standardize_record(counts / 1000.0, 360, LEADS12, "mV", Settings(window_stride_s=5.0))
    np.testing.assert_allclose(monitor.ecg[:, :, 50:-50], expected[:, :, 50:-50], atol=1e-3)   # edges: filter
    assert rows["dead"].ecg is None and rows["dead"].reason == (
        "every window fails a quality check: 7 windows at 0-30 s: flat lead(s) (std < 0.005 mV): V2; "
        "saturated: 100.0% of a lead's samples at its extreme value")


def test_a_pleth_channel_does_not_reject_the_ecg_and_monitor_names_are_leads(tmp_path):
    """CinC 2015's layout (a103l, v102s): II and V in mV, PLETH and RESP in NU. Lead selection
    comes before the unit check; MLII is lead II; a rejection lists the channels found."""
    from ecgfm.inference import InputOptions
    from ecgfm.readers import make_reader
    from ecgfm.wfdb import write_record
    ecg = _synthetic()
    digital = np.column_stack([np.round(ecg[:, [1, 7]] * 1000), np.full((5000, 2), 300)]).astype("<i2")
    write_record(tmp_path, "alarm", digital, 500, ["MLII", "V", "PLETH", "RESP"])
    hea = tmp_path / "alarm.hea"
    lines = hea.read_text().splitlines()
    lines[3], lines[4] = lines[3].replace("/mV", "/NU"), lines[4].replace("/mV", "/NU")
    hea.write_text("\n".join(lines) + "\n")
    rows = _rows(tmp_path, InputOptions(leads=("II",)))
    assert rows["alarm"].ecg is not None, rows["alarm"].reason
    assert rows["alarm"].leads["leads_present"] == "II"
    rows = _rows(tmp_path)
    assert rows["alarm"].reason == ("missing lead(s): I, III, aVR, aVL, aVF, V1, V2, V3, V4, V5, V6 (channels in the file: "
                                    "MLII (mV), V (mV), PLETH (NU), RESP (NU))")
    raw = make_reader("wfdb", tmp_path, "x").load(make_reader("wfdb", tmp_path, "x").items()[0][0])
    assert raw.lead_names == ["MLII", "V"] and raw.unit == "mV"
    np.testing.assert_allclose(raw.signal[:, 0], digital[:, 0] / 1000.0, atol=1e-6)


def test_dicom_channels_are_scaled_each_by_their_own_sensitivity_and_unit(tmp_path):
    """PS3.3 C.10.9.1.4: value x Channel Sensitivity x Correction Factor + Baseline, in each
    channel's own units; a channel without Channel Sensitivity has no defined scale (not x 1)."""
    from ecgfm.formats import read_dicom
    ecg = _synthetic()
    write_dicom_ecg(tmp_path / "uv.dcm", ecg, 500, LEADS12, correction=1.25, baseline_uv=10.0)
    write_dicom_ecg(tmp_path / "mixed.dcm", ecg, 500, LEADS12, correction=1.25, baseline_uv=10.0,
                    millivolt_leads=("V1", "V2"))
    uv, mixed = read_dicom(tmp_path / "uv.dcm"), read_dicom(tmp_path / "mixed.dcm")
    assert uv.unit == mixed.unit == "mV" and uv.lead_names == mixed.lead_names == LEADS12
    np.testing.assert_allclose(uv.signal, ecg, atol=0.002)
    np.testing.assert_allclose(mixed.signal, uv.signal, atol=1e-6)
    write_dicom_ecg(tmp_path / "unscaled.dcm", ecg, 500, LEADS12, unscaled_leads=("V3",), unitless_leads=("V4",))
    unscaled = read_dicom(tmp_path / "unscaled.dcm")
    assert unscaled.lead_names == [lead for lead in LEADS12 if lead not in ("V3", "V4")]
    assert "V3 (no ChannelSensitivity: arbitrary units), V4 (no ChannelSensitivityUnitsSequence)" in unscaled.meta["channels"]


def test_hl7_aecg_reads_the_rhythm_sequence_set(tmp_path):
    """HL7 aECG: the RHYTHM series' own sequenceSet (not the median beats of its derivation),
    rate from the GLIST increment, value = origin + scale x digit."""
    from ecgfm.formats import read_aecg, xml_kind
    ecg = _synthetic()
    path = write_aecg(tmp_path / "a.xml", ecg, 500, LEADS12, scale_uv=2.5, origin_uv=-40.0)
    raw = read_aecg(path)
    assert xml_kind(path) == "aecg" and raw.fs == 500 and raw.signal.shape == (5000, 12)
    assert raw.lead_names == ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    np.testing.assert_allclose(raw.signal, ecg, atol=0.0013)


def test_philips_xli_round_trip_and_a_real_sierra_export(tmp_path):
    """Philips restingecgdata with XLI (sierra-ecg-tools' description): LZW over delta codes, the
    derived limb leads stored as residuals, UTF-16 as the devices write it; the calibration mark
    at the end is cut. And the 1.03 export that sierra-ecg-tools ships (tests/data/README.md)."""
    from ecgfm.formats import read_philips_xml, xml_kind
    from ecgfm.leads import lead_index, limb_lead_residuals
    ecg = _synthetic()
    for version in ("1.04", "1.03"):
        path = write_philips_xml(tmp_path / f"{version}.xml", ecg, 500, version=version)
        raw = read_philips_xml(path)
        assert xml_kind(path) == "philips" and raw.fs == 500 and raw.lead_names == LEADS12
        assert raw.meta["calibration_samples_cut"] == 500
        counts = np.round(ecg * 200)
        np.testing.assert_allclose(raw.signal, counts / 200.0, atol=1e-6)
    real = read_philips_xml(DATA / "sierra-ecg-tools" / "129DYPRG.XML")
    assert real.fs == 500 and real.signal.shape == (5264, 12) and real.meta["calibration_samples_cut"] == 236
    index = lead_index(real.lead_names)
    x = np.stack([real.signal[:, index[lead]] for lead in CANONICAL_LEADS])
    assert max(limb_lead_residuals(x).values()) < 0.05          # the rebuilt limb leads obey Einthoven
    assert 0.5 < np.median(np.percentile(x, 99.5, axis=1) - np.percentile(x, 0.5, axis=1)) < 3.0   # mV


def test_utf16_xml_and_a_dicom_file_without_suffix_are_found(tmp_path):
    ecg = _synthetic()
    leads = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    path = write_muse_xml(tmp_path / "m.xml", ecg[:, [LEADS12.index(n) for n in leads]], 500, leads)
    text = path.read_text(encoding="latin-1").replace("ISO-8859-1", "UTF-16")
    path.write_text(text, encoding="utf-16")
    write_dicom_ecg(tmp_path / "1.2.840.1234", ecg, 500, LEADS12)
    rows = _rows(tmp_path)
    assert sorted(rows) == ["1.2.840.1234", "m"]
    assert all(o.ecg is not None for o in rows.values()), {k: o.reason for k, o in rows.items()}
    from ecgfm.inference import open_input
    assert open_input(tmp_path / "1.2.840.1234", PREPROCESSING)[0] == "DICOM"
