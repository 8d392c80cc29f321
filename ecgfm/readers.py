"""Readers for the raw ECG archives, each in its real on-disk format.

A reader has two steps, so that the cheap one runs once and the expensive one in parallel:

* ``items()`` reads the metadata and returns ``(items, rejected)``: one ``Item`` per record
  that has a waveform, and ``(record_id, reason)`` for every metadata row that cannot become a
  record (no waveform file, no HDF5 row, ...). Nothing is dropped silently.
* ``load(item)`` returns a ``RawRecord``: the signal [n_samples, n_signals] with lead names,
  its rate and unit. It raises ``RecordError`` (or ``WfdbError``) with a reason.

Every item carries ``patient_id`` (source-qualified so that ids never collide across
sources), ``age`` and ``sex`` ("M"/"F") where known, and label columns where the source has them.
Facts about each format: ``../shared/notes/sources.md`` and the README's data section.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .leads import derive_limb_leads
from .wfdb import read_record


class RecordError(Exception):
    """One record cannot be read; the message is the reason that goes to the quarantine."""


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


def _wfdb_raw(signal, header) -> RawRecord:
    units = {s.units for s in header.signals}
    if len(units) != 1:
        raise RecordError(f"mixed units across leads: {sorted(units)}")
    unit = header.signals[0].units
    return RawRecord(signal, header.fs, [s.name for s in header.signals], unit, {"orig_unit": unit})


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
        present = existing_files(self.root, (f"{rel}.hea" for rel in db[column]))
        items, rejected = [], []
        columns = [db[c].tolist() for c in ("ecg_id", column, "patient_id", "age", "sex", "scp_codes",
                                             "strat_fold")]
        for ecg_id, rel, patient, age, sex, scp_codes, fold in zip(*columns):
            record_id = str(int(ecg_id))
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
        present = existing_files(self.root, (f"{p}.hea" for p in records["path"]))
        items, rejected = [], []
        for study, subject, path in zip(*(records[c].tolist() for c in ("study_id", "subject_id", "path"))):
            record_id = str(int(study))
            if f"{path}.hea" not in present:
                rejected.append((record_id, f"no waveform: {path}.hea is missing"))
                continue
            items.append(Item(record_id, path, {"patient_id": f"{self.source}:{int(subject)}",
                                                "age": None, "sex": None}))
        return items, rejected

    def load(self, item):
        return _load_wfdb(self.root / item.locator)


class WFDBFolderReader:
    """Any folder of WFDB records with 12 named leads (e.g. PhysioNet/CinC 2021, ``.dat`` or ``.mat``).

    Age, sex and diagnoses come from ``# Age:``, ``# Sex:``, ``# Dx:`` header comments when present.
    Without a patient identifier every record is its own patient.
    """

    expected_fs = None

    def __init__(self, root, source="wfdb"):
        self.root, self.source = Path(root), source

    def items(self):
        headers = sorted(self.root.rglob("*.hea"))
        if not headers:
            raise FileNotFoundError(f"no WFDB header (*.hea) under {self.root}")
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


class Code15Reader:
    """CODE-15%: ``exams.csv`` + ``exams_part{i}.hdf5`` (``tracings`` N x 4096 x 12, ``exam_id``).

    The CSV is re-indexed by the HDF5 ``exam_id`` (the rows are not in CSV order); an all-zero
    HDF5 row with ``exam_id`` 0 is the parts' padding row and is not a record. Zero padding is
    stripped before resampling.
    """

    label_columns = ("1dAVb", "RBBB", "LBBB", "SB", "AF", "ST", "normal_ecg")
    expected_fs = None

    def __init__(self, root, source="code15", fs=400.0, unit="mV",
                 lead_names=("DI", "DII", "DIII", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"),
                 hdf5_glob="exams_part*.hdf5"):
        self.root, self.source, self.fs, self.unit = Path(root), source, float(fs), unit
        self.lead_names, self.hdf5_glob = list(lead_names), hdf5_glob
        self._h5 = _H5Cache()

    def _patient(self, row) -> str:
        pid = row.get("patient_id")
        pid = _clean(pid)
        return f"{self.source}:{int(pid) if pid is not None else 'exam' + str(int(row['exam_id']))}"

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
            meta = {"patient_id": self._patient(row), "age": _clean(row.get("age")),
                    "sex": _sex(row.get("is_male"), True, False)}
            meta.update({c: _clean(row[c]) for c in self.label_columns if c in row.index})
            items.append(Item(str(exam_id), located[exam_id], meta))
        extra = sorted(set(located) - set(int(i) for i in exams.index))
        rejected += [(str(e), f"waveform without a row in exams.csv ({located[e][0]})") for e in extra]
        return items, rejected

    def load(self, item):
        part, row = item.locator
        signal, stripped = code_signal(self._h5.get(str(self.root / part))["tracings"][row])
        return RawRecord(signal, self.fs, self.lead_names, self.unit,
                         {"orig_unit": self.unit, "zero_padding_stripped": stripped})


class SamiTropReader(Code15Reader):
    """SaMi-Trop: the CODE layout with a single ``exams.hdf5``; one exam per patient unless the
    CSV says otherwise."""

    label_columns = ("death", "timey", "normal_ecg")

    def __init__(self, root, source="samitrop", **kwargs):
        kwargs.setdefault("hdf5_glob", "exams.hdf5")
        super().__init__(root, source=source, **kwargs)


class IKEMReader:
    """IKEM: HDF5 files with datasets ``exam_id``, ``hashes``, ``real_lengths``, ``tracings``
    (N x 4096 x 8 int16, leads I, II, V1-V6, ``uv_per_count`` microvolts per unit) and an
    ``exams.csv`` mapping ``exam_id`` to ``patient_id``. III, aVR, aVL, aVF are derived.

    ``real_lengths`` is the original number of samples at ``fs``: when it is at most the stored
    length, the first ``real_length`` rows are the recording; when it is larger, the stored rows
    are taken to span the original duration (an effective rate of stored/real_length * fs), and
    the record is flagged. The SHA1 in ``hashes`` is kept in the manifest.
    """

    stored_leads = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    expected_fs = None

    def __init__(self, root, source="ikem", fs=500.0, uv_per_count=4.88, hdf5_glob="*.h*5"):
        self.root, self.source, self.fs = Path(root), source, float(fs)
        self.uv_per_count, self.hdf5_glob = float(uv_per_count), hdf5_glob
        self._h5 = _H5Cache()

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
                hashes = f["hashes"][:] if "hashes" in f else [None] * len(ids)
            for row, (exam_id, length, digest) in enumerate(zip(ids, lengths, hashes)):
                exam_id = int(exam_id)
                if exam_id not in exams.index:
                    rejected.append((str(exam_id), f"no patient: exam_id {exam_id} missing from exams.csv"))
                    continue
                digest = digest.decode() if isinstance(digest, bytes) else _clean(digest)
                items.append(Item(str(exam_id), (part.name, row, int(length)),
                                  {"patient_id": f"{self.source}:{exams.loc[exam_id, 'patient_id']}",
                                   "age": _clean(exams.loc[exam_id].get("age")),
                                   "sex": _sex(exams.loc[exam_id].get("sex"), "M", "F"),
                                   "sha1": digest}))
        return items, rejected

    def load(self, item):
        part, row, real_length = item.locator
        stored = np.asarray(self._h5.get(str(self.root / part))["tracings"][row], dtype=np.float32)
        n_stored = stored.shape[0]
        if real_length <= 0:
            raise RecordError(f"real_length {real_length} is not a length")
        if real_length <= n_stored:
            signal, fs, resampled = stored[:real_length], self.fs, False
        else:
            signal, fs, resampled = stored, self.fs * n_stored / real_length, True
        signal = signal * self.uv_per_count
        lead_i, lead_ii = signal[:, 0], signal[:, 1]
        derived = derive_limb_leads(lead_i, lead_ii)
        full = np.column_stack([lead_i, lead_ii, derived["III"], derived["aVR"], derived["aVL"],
                                derived["aVF"], signal[:, 2:]])
        names = ["I", "II", "III", "aVR", "aVL", "aVF", *self.stored_leads[2:]]
        return RawRecord(full, fs, names, "uV", {"orig_unit": f"{self.uv_per_count:g} uV/count",
                                                 "ikem_stored_resampled": resampled})


# --- UK Biobank XML -------------------------------------------------------------------------

class UKBiobankReader:
    """UK Biobank resting ECG XML (GE CardioSoft), one file per ECG: ``<eid>_20205_<i>_0.xml``.

    The 10 s rhythm strips are ``StripData/WaveformData`` elements (one per lead, ``lead``
    attribute, comma-separated integers) with ``SampleRate`` and ``Resolution`` (microvolts per
    unit). Parsed with defusedxml, which refuses entity expansion and external entities.
    """

    expected_fs = None
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
        from defusedxml import ElementTree
        from defusedxml.common import DefusedXmlException
        try:
            root = ElementTree.parse(self.root / item.locator).getroot()
        except DefusedXmlException as exc:
            raise RecordError(f"refused XML: {type(exc).__name__} (entity or DTD tricks)") from None
        except ElementTree.ParseError as exc:
            raise RecordError(f"unreadable XML: {exc}") from None
        strip = root.find(".//StripData")
        if strip is None:
            raise RecordError("no StripData element (not a resting ECG export?)")
        try:
            fs = float(strip.findtext("SampleRate"))
            resolution = strip.find("Resolution")
            uv = float(resolution.text)
        except (TypeError, ValueError, AttributeError):
            raise RecordError("StripData lacks a numeric SampleRate or Resolution") from None
        names, columns = [], []
        for wave in strip.findall("WaveformData"):
            names.append(wave.get("lead", ""))
            columns.append(np.array([int(v) for v in wave.text.replace("\n", "").split(",") if v.strip()],
                                    dtype=np.float32))
        if not columns:
            raise RecordError("no WaveformData element")
        n = min(len(c) for c in columns)
        signal = np.column_stack([c[:n] for c in columns]) * uv
        meta = {"orig_unit": f"{uv:g} uV/count"}
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
