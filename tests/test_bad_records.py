"""A crafted suite of bad records: each ends in the quarantine with its reason, the others are kept."""
import re

import numpy as np
import pandas as pd
import pytest

from ecgfm.corpus import SourceError, standardize_source
from ecgfm.demo import write_demo_source
from ecgfm.readers import make_reader
from ecgfm.standardize import Settings


def _hea(root, ecg_id):
    return root / f"records500/00000/{ecg_id:05d}_hr.hea"


def _edit_header(root, ecg_id, fn):
    path = _hea(root, ecg_id)
    path.write_text(fn(path.read_text()))


def _rewrite_dat(root, ecg_id, fn):
    dat = _hea(root, ecg_id).with_suffix(".dat")
    x = np.fromfile(dat, dtype="<i2").reshape(-1, 12)
    fn(x).astype("<i2").tofile(dat)


def _swap_names(text, a, b):
    lines = text.splitlines()
    for k, line in enumerate(lines):
        if line.endswith(f" {a}"):
            lines[k] = line[: -len(a)] + b
        elif line.endswith(f" {b}"):
            lines[k] = line[: -len(b)] + a
    return "\n".join(lines) + "\n"


def _short(x):
    return x[:1500]


def _nan_run(x):
    x = x.copy()
    x[2000:2300, 4] = -32768           # format 16's invalid-sample value: a 0.6 s NaN run
    return x


def _flat(x):
    x = x.copy()
    x[:, 8] = 17                        # V3 stuck at one value
    return x


BAD = {  # ecg_id -> (how it is broken, expected reason pattern)
    2: ("truncated .dat", "truncated signal file"),
    3: ("unreadable header", "unreadable record line"),
    4: ("NaN run", r"NaN run of 300 samples"),
    5: ("flat lead", r"flat lead\(s\).*V3"),
    6: ("wrong sampling rate in the header", r"sampling rate 250 Hz in the header.*500 Hz"),
    7: ("a 3 s record", r"too short: 3\.00 s < 10 s"),
    8: ("a missing lead", r"missing lead\(s\): V5"),
    9: ("swapped aVL/aVF", r"limb leads inconsistent"),
    10: ("declared in the wrong unit", r"implausible amplitude.*wrong unit"),
}


@pytest.fixture
def broken_ptbxl(tmp_path):
    root = tmp_path / "raw"
    write_demo_source("ptbxl", root, n_patients=40, seed=11, max_ecgs_per_patient=1, missing_waveforms=1)
    dat2 = _hea(root, 2).with_suffix(".dat")
    dat2.write_bytes(dat2.read_bytes()[:50000])
    _edit_header(root, 3, lambda t: "garbage header\n" + t.split("\n", 1)[1])
    _rewrite_dat(root, 4, _nan_run)
    _rewrite_dat(root, 5, _flat)
    _edit_header(root, 6, lambda t: t.replace(" 12 500 5000", " 12 250 5000", 1))
    _rewrite_dat(root, 7, _short)
    _edit_header(root, 7, lambda t: t.replace(" 12 500 5000", " 12 500 1500", 1))
    _edit_header(root, 8, lambda t: "\n".join(l for l in t.splitlines() if not l.endswith(" V5"))
                 .replace(" 12 500", " 11 500", 1) + "\n")
    _edit_header(root, 9, lambda t: _swap_names(t, "AVL", "AVF"))
    _edit_header(root, 10, lambda t: t.replace("/mV", "/uV"))
    return root


def test_each_bad_record_is_quarantined_with_its_reason(broken_ptbxl, tmp_path):
    reader = make_reader("ptbxl", broken_ptbxl, "ptbxl", {"rate": 500})
    summary = standardize_source(reader, tmp_path / "std", "ptbxl", Settings(expected_fs=500),
                                 shard_size=8, threads=2, progress=False)
    manifest = pd.read_parquet(tmp_path / "std/manifest.parquet")
    quarantine = pd.read_parquet(tmp_path / "std/quarantine.parquet").set_index("record_id")
    for ecg_id, (what, pattern) in BAD.items():
        assert str(ecg_id) in quarantine.index, f"{what} was not quarantined"
        assert re.search(pattern, quarantine.loc[str(ecg_id), "reason"]), \
            f"{what}: {quarantine.loc[str(ecg_id), 'reason']!r}"
    assert quarantine.loc["41", "reason"].startswith("no waveform")      # the metadata-only row
    assert len(quarantine) == len(BAD) + 1
    assert len(manifest) == 40 - len(BAD)
    assert summary["records_in"] == 41 == len(manifest) + len(quarantine)
    assert not set(manifest.record_id) & set(quarantine.index)


def test_keep_flagged_keeps_quality_failures_but_not_structural_ones(broken_ptbxl, tmp_path):
    reader = make_reader("ptbxl", broken_ptbxl, "ptbxl", {"rate": 500})
    standardize_source(reader, tmp_path / "std", "ptbxl", Settings(expected_fs=500, keep_flagged=True),
                       shard_size=8, threads=1, progress=False)
    manifest = pd.read_parquet(tmp_path / "std/manifest.parquet").set_index("record_id")
    quarantine = pd.read_parquet(tmp_path / "std/quarantine.parquet")
    flagged = {"4", "5", "9", "10"}                 # NaN run, flat lead, swapped leads, unit
    assert flagged <= set(manifest.index)
    assert all(manifest.loc[i, "qc_failed"] for i in flagged)
    assert set(quarantine.record_id) == {"2", "3", "6", "7", "8", "41"}


def test_a_source_in_the_wrong_unit_stops_with_a_clear_message(tmp_path):
    write_demo_source("code15", tmp_path / "raw", n_patients=60, seed=2)
    reader = make_reader("code15", tmp_path / "raw", "code15",
                         {"unit": "uV", "lead_names": ["DI", "DII", "DIII", "AVR", "AVL", "AVF",
                                                       "V1", "V2", "V3", "V4", "V5", "V6"]})
    with pytest.raises(SourceError, match=r"fail the same check.*'implausible amplitude' \(89 of 90\).*sources\.code15"):
        standardize_source(reader, tmp_path / "std", "code15", Settings(pad_short=True),
                           shard_size=8, threads=1, progress=False)
    assert not (tmp_path / "std/manifest.parquet").exists()
    assert not list((tmp_path / "std").glob("shard-*"))


PREPROCESSING = {"fs": 250, "seconds": 10, "leads": ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4",
                                                     "V5", "V6"]}


def test_a_folder_of_good_and_broken_files_of_every_format_gives_one_row_each(tmp_path):
    """Every file is its own failure domain: whatever its reader raises (a DICOM without its rate,
    a CardioSoft export with an empty lead, a cut XLI payload, a truncated WFDB signal file) is
    that file's row with a reason; the good files of each format are read; a multi-segment record
    is one row (its segment and layout headers are parts of it)."""
    from ecg_files import write_mixed_folder
    from ecgfm.demo import make_patients, synth_ecg
    from ecgfm.inference import open_input
    rng = np.random.default_rng(5)
    ecg = synth_ecg(make_patients(1, rng)[0], 500, 10.0, rng)
    expected = write_mixed_folder(tmp_path / "in", ecg)
    with pytest.warns(UserWarning):                      # pydicom's, on the broken DICOM file
        fmt, total, outcomes = open_input(tmp_path / "in", PREPROCESSING)
        rows = {o.record_id: o for o in outcomes}
    assert fmt == "arrays + DICOM + WFDB folder + XML" and total == len(expected)
    assert sorted(rows) == sorted(expected)
    for record_id, (status, pattern) in expected.items():
        outcome = rows[record_id]
        assert ("ok" if outcome.ecg is not None else "rejected") == status, (record_id, outcome.reason)
        assert re.search(pattern, outcome.reason), (record_id, outcome.reason)
        assert str(tmp_path) not in outcome.reason                  # the record id says where
    good = [rows[r].ecg for r, (status, _) in expected.items() if status == "ok" and r != "wfdb/monitor"]
    for ecg_std in good[1:]:                         # every format gives the same ECG back
        np.testing.assert_allclose(ecg_std, good[0], atol=0.006)

