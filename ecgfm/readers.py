"""Readers for the raw ECG archives, each in its real on-disk format.

A reader has two steps, so that the cheap one runs once and the expensive one in parallel:

* ``items()`` reads the metadata and returns ``(items, rejected)``: one ``Item`` per record
  that has a waveform, and ``(record_id, reason)`` for every metadata row that cannot become a
  record (no waveform file, no HDF5 row, ...). Nothing is dropped silently.
* ``load(item)`` returns a ``RawRecord``: the signal [n_samples, n_signals] with lead names,
  its rate and unit. It raises ``RecordError`` (or ``WfdbError``) with a reason.

Every item carries ``patient_id`` (source-qualified so that ids never collide across
sources), ``age`` and ``sex`` ("M"/"F") where known, and label columns where the source has them.
Every ``RawRecord`` says how its samples were stored: ``stored_leads`` (before any lead is derived)
and ``mv_per_unit`` (the amplitude step in mV, the paper's "MV-unit"; 1 for float tracings in mV).

A name found inside a file (a WFDB header's signal file, a metadata table's record path) is
followed only when it stays inside the archive: absolute names and names with ``..`` are refused
with a reason (``unsafe_relative_path``), never opened.

Each reader's facts come from the dataset's own description or its authors' code, cited in its
docstring; the README's source table repeats them.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .leads import CANONICAL_LEADS, derive_limb_leads
from .wfdb import WfdbError, read_header, read_record, unit_to_mv


class RecordError(Exception):
    """One record cannot be read; the message is the reason that goes to the quarantine."""


class ArchiveError(ValueError):
    """The archive as a whole does not have the layout its reader expects (the message says what
    differs); nothing of it is standardized."""


@dataclass
class Item:
    record_id: str
    locator: Any
    meta: dict = field(default_factory=dict)


@dataclass
class RawRecord:
    signal: np.ndarray          # [n_samples, n_signals]
    fs: float
    lead_names: list[str]
    unit: str                   # "mV", "uV", "V"
    meta: dict = field(default_factory=dict)   # values known only after reading the waveform


def _clean(value):
    """NaN/None -> None; numpy scalars -> Python scalars (Parquet-friendly)."""
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def existing_files(root: Path, rel_paths) -> set[str]:
    """Which of ``rel_paths`` (relative to ``root``) exist, listing each directory once.

    Checking 22,000 PTB-XL headers one ``stat`` at a time is slow on cluster file systems;
    PTB-XL keeps 1,000 records per directory, so this is 22 listings.
    """
    by_dir: dict[str, list[str]] = {}
    for rel in rel_paths:
        parent, _, name = rel.rpartition("/")
        by_dir.setdefault(parent, []).append(name)
    found = set()
    for parent, names in by_dir.items():
        try:
            present = set(os.listdir(root / parent))
        except (FileNotFoundError, NotADirectoryError):
            continue
        found.update(f"{parent}/{n}" if parent else n for n in names if n in present)
    return found


def unsafe_relative_path(rel) -> str | None:
    """Why ``rel`` (a path read from inside an archive) may not be followed, or None when it is a
    plain relative path that stays below the folder it is relative to."""
    text = str(rel)
    if not text or "\x00" in text or "\\" in text:
        return f"path {text!r} is empty or holds a NUL or backslash"
    if text.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", text):
        return f"path {text!r} is absolute"
    if ".." in text.split("/"):
        return f"path {text!r} leaves its folder (..)"
    return None


def _identifier(value):
    """An id from a CSV cell: integral floats (a column with gaps reads as float) lose their '.0'."""
    value = _clean(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _sex(value, male, female):
    value = _clean(value)
    if value == male:
        return "M"
    if value == female:
        return "F"
    return None


# --- WFDB-based sources --------------------------------------------------------------------

def _load_wfdb(path: Path) -> RawRecord:
    return _wfdb_raw(*read_record(path))


def channel_list(names, units) -> str:
    """``II (mV), V (mV), PLETH (NU)``: the channels a file holds, for a rejection's reason."""
    return ", ".join(f"{name} ({unit})" for name, unit in zip(names, units))


def voltage_record(signal: np.ndarray, fs: float, names: list[str], units: list[str | None],
                   meta: dict | None = None) -> RawRecord:
    """A record in mV from channels each in its own unit: a channel in a voltage unit (V, mV, uV,
    nV) is converted to mV by its own factor; any other (``NU``, ``mmHg``, none) is left out, so
    that a pressure or pleth channel beside the ECG does not reject the record: the leads are
    chosen from what remains, and ``meta["channels"]`` lists every channel found with its unit
    (what a rejection for a missing lead shows)."""
    factors = []
    for unit in units:
        try:
            factors.append(unit_to_mv(unit) if unit else None)
        except ValueError:
            factors.append(None)
    keep = [k for k, f in enumerate(factors) if f is not None]
    if len(keep) < signal.shape[1]:
        signal = signal[:, keep]
    scale = np.array([factors[k] for k in keep], dtype=np.float32)
    if np.any(scale != 1):
        signal = signal * scale
    found = channel_list(names, [u or "no unit" for u in units])
    return RawRecord(signal, fs, [names[k] for k in keep], "mV", {"channels": found, **(meta or {})})


def _wfdb_raw(signal, header) -> RawRecord:
    units = [s.units for s in header.signals]
    record = voltage_record(signal, header.fs, [s.name for s in header.signals], units,
                            {"stored_leads": header.n_signals})
    steps = []
    for s in header.signals:
        try:
            steps.append(unit_to_mv(s.units) / s.gain)
        except ValueError:
            continue
    record.meta.update({"orig_unit": "/".join(sorted(set(units))),
                        "mv_per_unit": float(np.median(steps)) if steps else None})
    return record


def _checked_items(rows, column_name: str):
    """Split ``(record_id, rel_path, ...)`` rows into those whose path is safe to follow and
    rejections ``(record_id, reason)`` for the others."""
    safe, rejected = [], []
    for row in rows:
        reason = unsafe_relative_path(row[1])
        if reason:
            rejected.append((row[0], f"unsafe {column_name}: {reason}; not followed"))
        else:
            safe.append(row)
    return safe, rejected


class PTBXLReader:
    """PTB-XL: ``ptbxl_database.csv`` + ``scp_statements.csv`` + WFDB ``records500``/``records100``."""

    def __init__(self, root, source="ptbxl", rate: int = 500):
        self.root, self.source, self.rate = Path(root), source, int(rate)
        if self.rate not in (100, 500):
            raise ValueError(f"PTB-XL has records at 100 or 500 Hz, not {rate}")
        self.expected_fs = float(self.rate)

    def items(self):
        db_path = self.root / "ptbxl_database.csv"
        if not db_path.exists():
            raise FileNotFoundError(f"{db_path} not found: is {self.root} a PTB-XL folder?")
        db = pd.read_csv(db_path)
        column = "filename_hr" if self.rate == 500 else "filename_lr"
        columns = [db[c].tolist() for c in ("ecg_id", column, "patient_id", "age", "sex", "scp_codes",
                                             "strat_fold")]
        columns[0] = [str(int(e)) for e in columns[0]]
        rows, rejected = _checked_items(zip(*columns), column)
        present = existing_files(self.root, (f"{row[1]}.hea" for row in rows))
        items = []
        for record_id, rel, patient, age, sex, scp_codes, fold in rows:
            if f"{rel}.hea" not in present:
                rejected.append((record_id, f"no waveform: {rel}.hea is missing (metadata row "
                                            f"without a record)"))
                continue
            meta = {"patient_id": f"{self.source}:{int(patient)}", "age": _clean(age),
                    "sex": _sex(sex, 0, 1), "scp_codes": scp_codes, "strat_fold": int(fold)}
            items.append(Item(record_id, rel, meta))
        return items, rejected

    def load(self, item: Item) -> RawRecord:
        return _load_wfdb(self.root / item.locator)


class MIMICReader:
    """MIMIC-IV-ECG: ``record_list.csv`` (subject_id, study_id, path) + a WFDB tree."""

    expected_fs = 500.0

    def __init__(self, root, source="mimic"):
        self.root, self.source = Path(root), source

    def items(self):
        records = pd.read_csv(self.root / "record_list.csv")
        ids = [str(int(study)) for study in records["study_id"]]
        rows, rejected = _checked_items(zip(ids, records["path"].astype(str), records["subject_id"]), "path")
        present = existing_files(self.root, (f"{row[1]}.hea" for row in rows))
        items = []
        for record_id, path, subject in rows:
            if f"{path}.hea" not in present:
                rejected.append((record_id, f"no waveform: {path}.hea is missing"))
                continue
            items.append(Item(record_id, path, {"patient_id": f"{self.source}:{int(subject)}",
                                                "age": None, "sex": None}))
        return items, rejected

    def load(self, item):
        return _load_wfdb(self.root / item.locator)


def segment_headers(headers: list[Path]) -> set[Path]:
    """The headers that multi-segment records among ``headers`` list as their segments (and
    layout headers): parts of those records, not records."""
    parts = set()
    for hea in headers:
        try:
            with open(hea, encoding="latin-1") as fh:
                first = next((ln for ln in fh if ln.strip() and not ln.startswith("#")), "")
        except OSError:
            continue
        tokens = first.split()
        if not tokens or "/" not in tokens[0]:
            continue
        try:
            header = read_header(hea)
        except WfdbError:
            continue                     # its own row will say why
        parts.update(hea.with_name(f"{name}.hea") for name, _ in header.segments or [] if name != "~")
    return parts


class WFDBFolderReader:
    """Any folder of WFDB records with 12 named leads (e.g. PhysioNet/CinC 2021, ``.dat`` or ``.mat``).

    Age, sex and diagnoses come from ``# Age:``, ``# Sex:``, ``# Dx:`` header comments when present.
    Without a patient identifier every record is its own patient. A multi-segment record is one
    record: the segment and layout headers its master header lists are not records of their own.
    """

    expected_fs = None

    def __init__(self, root, source="wfdb"):
        self.root, self.source = Path(root), source

    def items(self):
        headers = sorted(self.root.rglob("*.hea"))
        if not headers:
            raise FileNotFoundError(f"no WFDB header (*.hea) under {self.root}")
        parts = segment_headers(headers)
        headers = [hea for hea in headers if hea not in parts]
        items = []
        for hea in headers:
            rel = hea.relative_to(self.root).with_suffix("")
            record_id = rel.as_posix()
            items.append(Item(record_id, rel, {"patient_id": f"{self.source}:{record_id}"}))
        return items, []

    def load(self, item):
        signal, header = read_record(self.root / item.locator)
        rec = _wfdb_raw(signal, header)
        fields = header.comment_fields()
        age = fields.get("Age", "")
        rec.meta.update({"age": float(age) if re.fullmatch(r"\d+(\.\d+)?", age) else None,
                         "sex": {"male": "M", "female": "F", "m": "M", "f": "F"}.get(
                             fields.get("Sex", "").lower()),
                         "dx": fields.get("Dx")})
        return rec


# --- HDF5-based sources (CODE-15%, SaMi-Trop, IKEM) ----------------------------------------

class _H5Cache:
    """Open HDF5 files once per process (readers are pickled into worker processes)."""

    def __init__(self):
        self._files = {}

    def get(self, path):
        import h5py
        if path not in self._files:
            self._files[path] = h5py.File(path, "r")
        return self._files[path]

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self._files = {}


def strip_zero_padding(tracing: np.ndarray) -> tuple[np.ndarray, int]:
    """Remove leading and trailing samples where every lead is exactly 0 ([n, leads]).

    CODE-15% and SaMi-Trop pad 7 s and 10 s recordings with zeros on both sides to 4096 samples.
    Returns (signal, number of samples stripped).
    """
    nonzero = np.flatnonzero(np.any(tracing != 0, axis=1))
    if nonzero.size == 0:
        return tracing[:0], tracing.shape[0]
    start, stop = nonzero[0], nonzero[-1] + 1
    return tracing[start:stop], tracing.shape[0] - (stop - start)


def code_signal(tracing) -> tuple[np.ndarray, int]:
    """A CODE-layout tracing row [4096, 12] -> (signal without its zero padding, samples stripped);
    ``RecordError`` when the row is all zeros."""
    signal, stripped = strip_zero_padding(np.asarray(tracing, dtype=np.float32))
    if signal.shape[0] == 0:
        raise RecordError("all-zero tracing")
    return signal, stripped


class _CodeLayoutReader:
    """The CODE layout shared by CODE-15% and SaMi-Trop: float32 ``tracings`` [N, 4096, 12] in mV at
    400 Hz, recordings of 7 or 10 s zero-padded on both sides to 4,096 samples, and an
    ``exams.csv``. The padding is stripped before resampling (``code_signal``)."""

    label_columns: tuple[str, ...] = ()
    expected_fs = None

    def __init__(self, root, source, fs=400.0, unit="mV",
                 lead_names=("DI", "DII", "DIII", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")):
        self.root, self.source, self.fs, self.unit = Path(root), source, float(fs), unit
        self.lead_names = list(lead_names)
        self._h5 = _H5Cache()

    def _meta(self, row) -> dict:
        pid = _clean(row.get("patient_id"))
        patient = int(pid) if pid is not None else f"exam{int(row['exam_id'])}"
        meta = {"patient_id": f"{self.source}:{patient}", "age": _clean(row.get("age")),
                "sex": _sex(row.get("is_male"), True, False)}
        meta.update({c: _clean(row[c]) for c in self.label_columns if c in row.index})
        return meta

    def load(self, item):
        part, row = item.locator
        tracings = self._h5.get(str(self.root / part))["tracings"]
        signal, stripped = code_signal(tracings[row])
        return RawRecord(signal, self.fs, self.lead_names, self.unit,
                         {"orig_unit": self.unit, "zero_padding_stripped": stripped,
                          "stored_leads": int(tracings.shape[-1]), "mv_per_unit": unit_to_mv(self.unit)})


class Code15Reader(_CodeLayoutReader):
    """CODE-15% (Zenodo 4916206): ``exams.csv`` + ``exams_part{i}.hdf5`` with ``tracings`` and
    ``exam_id``, as the record's description gives them.

    The CSV is re-indexed by the HDF5 ``exam_id`` (the rows are not in CSV order); an all-zero
    HDF5 row with ``exam_id`` 0 is the parts' padding row and is not a record. The unit is mV by
    the dataset's description; users report amplitudes about twice the usual (antonior92
    ecg-age-prediction issues 1 and 5), which the amplitude summary makes visible and
    ``standardize.amplitude_scale`` corrects if needed.
    """

    label_columns = ("1dAVb", "RBBB", "LBBB", "SB", "AF", "ST", "normal_ecg")

    def __init__(self, root, source="code15", hdf5_glob="exams_part*.hdf5", **kwargs):
        super().__init__(root, source, **kwargs)
        self.hdf5_glob = hdf5_glob

    def items(self):
        import h5py
        exams = pd.read_csv(self.root / "exams.csv")
        exams = exams.drop_duplicates("exam_id").set_index("exam_id", drop=False)
        parts = sorted(self.root.glob(self.hdf5_glob))
        if not parts:
            raise FileNotFoundError(f"no {self.hdf5_glob} under {self.root}")
        located = {}
        for part in parts:
            with h5py.File(part, "r") as f:
                if "exam_id" not in f:
                    raise ArchiveError(f"{part.name} has no exam_id dataset: not the CODE-15% layout "
                                       f"(SaMi-Trop's exams.hdf5 is read by the samitrop reader)")
                ids = f["exam_id"][:]
            for row, exam_id in enumerate(ids):
                if int(exam_id) != 0:
                    located[int(exam_id)] = (part.name, row)
        items, rejected = [], []
        for exam_id, row in exams.iterrows():
            exam_id = int(exam_id)
            if exam_id not in located:
                where = row.get("trace_file", "any HDF5 part")
                rejected.append((str(exam_id), f"no waveform: exam_id {exam_id} not found in {where}"))
                continue
            items.append(Item(str(exam_id), located[exam_id], self._meta(row)))
        extra = sorted(set(located) - set(int(i) for i in exams.index))
        rejected += [(str(e), f"waveform without a row in exams.csv ({located[e][0]})") for e in extra]
        return items, rejected


class SamiTropReader(_CodeLayoutReader):
    """SaMi-Trop (Zenodo 4905618): ``exams.csv`` + one ``exams.hdf5`` that holds only ``tracings``
    [N, 4096, 12] (400 Hz, mV, zero-padded on both sides as in CODE-15%).

    There is no ``exam_id`` dataset: HDF5 row i is the exam of CSV row i, as the PhysioNet 2025
    challenge's ``prepare_samitrop_data.py`` reads it. So the CSV is taken exactly in its file
    order (no sorting, no de-duplication before the mapping), and a different number of rows on the
    two sides stops the source with ``ArchiveError``. A repeated ``exam_id`` keeps its first row;
    the later ones are quarantined. 1,631 exams of 1,631 patients: without a ``patient_id`` column
    each exam is its own patient.
    """

    label_columns = ("death", "timey", "normal_ecg")

    def __init__(self, root, source="samitrop", hdf5_name="exams.hdf5", **kwargs):
        super().__init__(root, source, **kwargs)
        self.hdf5_name = hdf5_name

    def items(self):
        import h5py
        exams = pd.read_csv(self.root / "exams.csv")
        path = self.root / self.hdf5_name
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: is {self.root} a SaMi-Trop folder?")
        with h5py.File(path, "r") as f:
            if "tracings" not in f:
                raise ArchiveError(f"{path.name} has no tracings dataset")
            n_rows = f["tracings"].shape[0]
            stored_ids = f["exam_id"][:] if "exam_id" in f else None
        if n_rows != len(exams):
            raise ArchiveError(f"{path.name} holds {n_rows} tracings but exams.csv has {len(exams)} rows: "
                               f"SaMi-Trop pairs HDF5 row i with CSV row i, which needs equal counts")
        if stored_ids is not None and [int(i) for i in stored_ids] != [int(i) for i in exams["exam_id"]]:
            raise ArchiveError(f"{path.name} has an exam_id dataset that disagrees with the order of "
                               f"exams.csv: this copy is not laid out as SaMi-Trop is")
        items, rejected, first_row = [], [], {}
        for row_index, (_, row) in enumerate(exams.iterrows()):
            exam_id = int(row["exam_id"])
            if exam_id in first_row:
                rejected.append((str(exam_id), f"duplicate exam_id {exam_id}: CSV row {row_index} repeats "
                                               f"row {first_row[exam_id]}, whose tracing is kept"))
                continue
            first_row[exam_id] = row_index
            items.append(Item(str(exam_id), (path.name, row_index), self._meta(row)))
        return items, rejected


class IKEMReader:
    """IKEM (Zenodo 8393007): HDF5 files with datasets ``exam_id``, ``hashes`` (SHA1 of the
    recording), ``real_lengths`` and ``tracings`` [N, 4096, 8] int16 at 4.88 uV per count, 500 Hz,
    and an ``exams.csv``.

    Facts, from the dataset's description and its authors' code (github
    CaptainTrojan/electrocardioguard: ``h5_pt_dataloader.py``, ``scale_to_milivolts_and_add_leads``,
    and the converters in ``dataset_conversion_scripts/`` that write other archives in this layout):

    * the 8 stored columns are the leads **V1, V2, V3, V4, V5, V6, I, II**; III, aVR, aVL and aVF
      are derived from I and II (Einthoven, Goldberger). The limb-lead check cannot catch a wrong
      column for I or II (the derived leads follow it), so the order is fixed here, by name;
    * longer recordings were centre-cropped to 4,096 samples (8.192 s) and shorter ones
      end-padded: ``real_lengths`` is the true length, at most 4,096, and the first
      ``real_length`` rows are the recording. A larger value is not this layout (``RecordError``);
    * ``exams.csv``: ``exam_id, acquisition_date, patient_id, age, is_male, weight, height,
      ventricular_rate, atrial_rate``; ``is_male`` is 1, 0 or -1 and -1 means unknown, as it does
      for ``age``: unknown stays missing.

    8.192 s is shorter than the 10 s of the corpus: config.yaml standardizes IKEM with
    ``pad_short`` (zero padding on both sides, counted in ``qc_padded_samples``).
    """

    stored_leads = ("V1", "V2", "V3", "V4", "V5", "V6", "I", "II")
    expected_fs = None
    unknown = -1            # exams.csv's code for an unknown age or sex

    def __init__(self, root, source="ikem", fs=500.0, uv_per_count=4.88, hdf5_glob="*.h*5"):
        self.root, self.source, self.fs = Path(root), source, float(fs)
        self.uv_per_count, self.hdf5_glob = float(uv_per_count), hdf5_glob
        self._h5 = _H5Cache()

    def _known(self, value):
        value = _clean(value)
        return None if value is None or value == self.unknown else value

    def items(self):
        import h5py
        exams = pd.read_csv(self.root / "exams.csv").drop_duplicates("exam_id").set_index("exam_id")
        items, rejected = [], []
        parts = sorted(p for p in self.root.glob(self.hdf5_glob) if p.suffix in (".h5", ".hdf5"))
        if not parts:
            raise FileNotFoundError(f"no HDF5 file under {self.root}")
        for part in parts:
            with h5py.File(part, "r") as f:
                ids, lengths = f["exam_id"][:], f["real_lengths"][:]
                if f["tracings"].shape[1:] != (4096, len(self.stored_leads)):
                    raise ArchiveError(f"{part.name}: tracings of shape {f['tracings'].shape}; IKEM stores "
                                       f"[N, 4096, {len(self.stored_leads)}] ({', '.join(self.stored_leads)})")
                hashes = f["hashes"][:] if "hashes" in f else [None] * len(ids)
            for row, (exam_id, length, digest) in enumerate(zip(ids, lengths, hashes)):
                exam_id = int(exam_id)
                if exam_id not in exams.index:
                    rejected.append((str(exam_id), f"no patient: exam_id {exam_id} missing from exams.csv"))
                    continue
                exam = exams.loc[exam_id]
                age = self._known(exam.get("age"))
                digest = digest.decode() if isinstance(digest, bytes) else _clean(digest)
                items.append(Item(str(exam_id), (part.name, row, int(length)),
                                  {"patient_id": f"{self.source}:{_identifier(exam['patient_id'])}",
                                   "age": None if age is None else float(age),
                                   "sex": _sex(self._known(exam.get("is_male")), 1, 0), "sha1": digest}))
        return items, rejected

    def load(self, item):
        part, row, real_length = item.locator
        stored = self._h5.get(str(self.root / part))["tracings"][row]
        if not 0 < real_length <= stored.shape[0]:
            raise RecordError(f"real_length {real_length} is not a length of the {stored.shape[0]} stored "
                              f"samples (IKEM crops longer recordings to them): not the IKEM layout")
        signal = np.asarray(stored[:real_length], dtype=np.float32) * np.float32(self.uv_per_count)
        column = {lead: k for k, lead in enumerate(self.stored_leads)}
        lead_i, lead_ii = signal[:, column["I"]], signal[:, column["II"]]
        derived = derive_limb_leads(lead_i, lead_ii)
        names = list(CANONICAL_LEADS)
        full = np.column_stack([lead_i, lead_ii, *(derived[n] for n in names[2:6]),
                                *(signal[:, column[n]] for n in names[6:])])
        return RawRecord(full, self.fs, names, "uV",
                         {"orig_unit": f"{self.uv_per_count:g} uV/count", "stored_leads": len(self.stored_leads),
                          "mv_per_unit": self.uv_per_count * 1e-3})


# --- UK Biobank XML -------------------------------------------------------------------------

class UKBiobankReader:
    """UK Biobank resting ECG XML (GE CardioSoft), one file per ECG: ``<eid>_20205_<i>_0.xml``.

    The 10 s rhythm strips are ``StripData/WaveformData`` elements (one per lead, ``lead``
    attribute, comma-separated integers) with ``SampleRate`` and ``Resolution``, whose ``units``
    attribute must say ``uVperLsb`` (microvolts per count): another unit is a rejection, not a
    guess. Parsed with defusedxml, which refuses entity expansion and external entities.
    """

    expected_fs = None
    resolution_units = "uVperLsb"
    _NAME = re.compile(r"^(\d+)_20205_(\d+)_(\d+)$")

    def __init__(self, root, source="ukb"):
        self.root, self.source = Path(root), source

    def items(self):
        files = sorted(self.root.rglob("*.xml"))
        if not files:
            raise FileNotFoundError(f"no XML file under {self.root}")
        items, rejected = [], []
        for path in files:
            m = self._NAME.match(path.stem)
            if not m:
                rejected.append((path.stem, "file name is not <eid>_20205_<instance>_<array>.xml"))
                continue
            items.append(Item(path.stem, path.relative_to(self.root),
                              {"patient_id": f"{self.source}:{m.group(1)}"}))
        return items, rejected

    def load(self, item):
        return read_cardiosoft_xml(self.root / item.locator, self.resolution_units)


def parse_xml(path):
    """The root element of an XML file parsed with defusedxml (entity and DTD tricks refused), or
    ``RecordError`` with the reason."""
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException
    try:
        return ElementTree.parse(str(path)).getroot()
    except DefusedXmlException as exc:
        raise RecordError(f"refused XML: {type(exc).__name__} (entity or DTD tricks)") from None
    except ElementTree.ParseError as exc:
        raise RecordError(f"unreadable XML: {exc}") from None


def read_cardiosoft_xml(path, resolution_units: str = "uVperLsb") -> RawRecord:
    """One GE CardioSoft resting ECG XML export (UK Biobank's field 20205), see ``UKBiobankReader``."""
    root = parse_xml(path)
    strip = root.find(".//StripData")
    if strip is None:
        raise RecordError("no StripData element (not a resting ECG export?)")
    try:
        fs = float(strip.findtext("SampleRate"))
        resolution = strip.find("Resolution")
        uv = float(resolution.text)
    except (TypeError, ValueError, AttributeError):
        raise RecordError("StripData lacks a numeric SampleRate or Resolution") from None
    units = resolution.get("units")
    if (units or "").lower() != resolution_units.lower():
        raise RecordError(f"Resolution is in units={units!r}, not {resolution_units!r} "
                          f"(microvolts per count): its scale is unknown")
    names, columns = [], []
    for wave in strip.findall("WaveformData"):
        lead = wave.get("lead", "")
        try:
            values = [int(v) for v in (wave.text or "").replace("\n", "").split(",") if v.strip()]
        except ValueError:
            raise RecordError(f"WaveformData of lead {lead!r} holds a value that is not an integer") from None
        if not values:
            raise RecordError(f"WaveformData of lead {lead!r} holds no samples")
        names.append(lead)
        columns.append(np.array(values, dtype=np.float32))
    if not columns:
        raise RecordError("no WaveformData element")
    n = min(len(c) for c in columns)
    signal = np.column_stack([c[:n] for c in columns]) * uv
    meta = {"orig_unit": f"{uv:g} uV/count", "stored_leads": len(columns), "mv_per_unit": uv * 1e-3}
    age = root.findtext(".//PatientInfo/Age")
    meta["age"] = float(age) if age and age.strip().isdigit() else None
    meta["sex"] = {"MALE": "M", "FEMALE": "F"}.get((root.findtext(".//PatientInfo/Gender") or "").upper())
    return RawRecord(signal, fs, names, "uV", meta)


READERS = {
    "ptbxl": PTBXLReader,
    "mimic": MIMICReader,
    "code15": Code15Reader,
    "samitrop": SamiTropReader,
    "ikem": IKEMReader,
    "ukb": UKBiobankReader,
    "wfdb": WFDBFolderReader,
}


def make_reader(kind: str, root, source: str, options: dict | None = None):
    """A reader of ``kind`` over ``root``; ``options`` are the reader's keyword arguments."""
    if kind not in READERS:
        raise ValueError(f"unknown reader {kind!r}; known: {', '.join(READERS)}")
    return READERS[kind](root, source=source, **(options or {}))
