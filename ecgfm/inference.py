"""Using a model on one's own ECGs: input formats, the training standardization, embeddings and
predictions, one row per record (or per window).

Inputs (``open_input``):

* a folder holding ``manifest.parquet``: standardized shards written by ecgfm (used as stored);
* any other folder: every record below it in a format of ``ecgfm.formats`` or ``ecgfm.readers``:
  WFDB (``.hea`` + ``.dat``/``.mat``; a multi-segment record is one record, its segment and
  layout headers are not records of their own), DICOM waveforms (``.dcm``, or any file with the
  ``DICM`` preamble), XML (``.xml``, UTF-8 or UTF-16: GE MUSE, CardioSoft, HL7 aECG, Philips
  PageWriter/TC), and arrays with a JSON sidecar (``.npy``, ``.csv``);
* one such file, a ``.hea`` header, or a ``.h5``/``.hdf5`` file: with a ``tracings`` dataset
  [n, samples, 12] it is the CODE-15% layout (leads I, II, III, aVR, aVL, aVF, V1-V6; ``fs``
  400 Hz and mV by default; record ids from ``exam_id`` when present; zero padding stripped as in
  training), with ``ecg`` and ``record_id`` one standardized shard;
* a reader object of ``ecgfm.readers`` (``items()`` / ``load(item)``).

The input contract (``InputOptions``): raw records go through ``ecgfm.standardize.standardize_record``
with the model's preprocessing (rate, duration, lead order, mV) and the default quality checks.

* **Leads** (``leads``): ``all`` (default) expects the model's 12 leads; missing limb leads are
  derived exactly from two recorded ones (8 independent leads give all 12), anything else missing
  rejects the record. ``available`` takes each record as it comes: a lead it lacks (and cannot
  derive) is zeros. A list of names (``I,II``) declares the leads the user has: only those are
  used (the others are zeros even when recorded, limb leads derived from two of them), and a
  record without one of them is rejected. Which leads were recorded, derived and zeroed is in
  every row; pretraining's lead dropout zeroes leads the same way.
* **Length**: a record longer than the model's window is centre-cropped unless
  ``window_stride_s`` is given: then every window of the model's length at that stride (plus one
  ending at the last sample) is embedded and the record's output is the mean over its windows
  (embeddings, or probabilities), or one row per window with ``per_window``. A shorter record is
  rejected, or zero-padded when ``pad_short`` (7 s or more, as the CODE-15% corpus was), flagged.
* **Quality checks** judge the samples that are used: the centre crop, or each window. A window
  that fails is left out of the record's mean (``windows`` counts those used, ``windows_left_out``
  the others, and the row's ``reason`` says which and why); with ``per_window`` it is a row of its
  own with ``status = rejected`` and its reason. A record is rejected when every window fails.

A record that cannot be read or fails a check gets ``status = rejected`` and its reason; it is
listed, never dropped. Each file is its own failure domain: whatever its reader raises becomes
its row's reason and the run goes on; only an input that is wrong as a whole (a path that does not
exist, a folder without records, an unreadable HDF5 file) stops it with ``InputError``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .formats import XML_READERS, is_dicom_file, read_array, read_dicom, xml_kind
from .leads import normalize_lead_name
from .readers import Item, RecordError, WFDBFolderReader, code_signal, parse_xml, segment_headers
from .standardize import RejectRecord, Settings, standardize_record
from .wfdb import WfdbError

log = logging.getLogger(__name__)

CODE_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
LEAD_COLUMNS = ("leads_present", "leads_derived", "leads_zeroed")


class InputError(ValueError):
    """The input as a whole cannot be used (unknown format, empty, wrong leads)."""


@dataclass(frozen=True)
class InputOptions:
    fs: float = 400.0                   # rate of a CODE-style HDF5 file (Hz)
    unit: str = "mV"                    # unit of a CODE-style HDF5 file
    keep_flagged: bool = False          # use records that fail a quality check (flags in `reason`)
    pad_short: bool = False             # zero-pad records of 7 s or more to the model's duration
    leads: str | tuple = "all"          # "all", "available", or the lead names the user has
    window_stride_s: float | None = None    # slide windows this far apart over longer records
    per_window: bool = False            # one output row per window instead of their mean
    workers: int | None = None          # processes reading and standardizing files (None: one per core)

    @staticmethod
    def parse_leads(text: str) -> str | tuple:
        if text in ("all", "available"):
            return text
        try:
            return tuple(normalize_lead_name(name) for name in text.split(",") if name.strip())
        except ValueError as exc:
            raise InputError(f"--leads: {exc} (all, available, or names such as I,II,V1)") from None


@dataclass
class Outcome:
    record_id: str
    ecg: np.ndarray | None              # [leads, samples], or [windows, leads, samples]; None when rejected
    reason: str = ""                    # why rejected, or the QC flags of a kept record
    leads: dict = field(default_factory=dict)    # leads_present / leads_derived / leads_zeroed
    starts: list | None = None          # window starts (s) of the windows in ``ecg``, when windowed
    left_out: list = field(default_factory=list)    # (start s, reason) of each window a check left out
    window_note: str = ""               # what the left-out windows failed, for the record's row


def settings_for(preprocessing: dict, options: InputOptions = InputOptions()) -> Settings:
    """The standardization of training for a model's ``preprocessing``, with the input contract."""
    return Settings(fs=float(preprocessing["fs"]), seconds=float(preprocessing["seconds"]),
                    leads=tuple(preprocessing["leads"]), keep_flagged=options.keep_flagged,
                    pad_short=options.pad_short, zero_missing_leads=options.leads != "all",
                    window_stride_s=options.window_stride_s)


_LEAD_REASONS = ("missing lead", "declared lead", "no standard lead")


def _standardize(record_id, signal, fs, lead_names, unit, settings, options: InputOptions,
                 channels: str | None = None) -> Outcome:
    """One record through the training standardization; ``channels`` (what the file holds, with
    units) is added to a rejection for a missing lead, so that a user sees what was found."""
    outcome = _standardize_checked(record_id, signal, fs, lead_names, unit, settings, options)
    if outcome.ecg is None and outcome.reason.startswith(_LEAD_REASONS):
        found = channels or ", ".join(map(str, lead_names)) or "none"
        outcome.reason += f" (channels in the file: {found})"
    return outcome


def _standardize_checked(record_id, signal, fs, lead_names, unit, settings, options: InputOptions) -> Outcome:
    if isinstance(options.leads, tuple):            # only the leads the user declared
        names = []
        for name in lead_names:
            try:
                names.append(normalize_lead_name(name))
            except ValueError:
                names.append(None)
        absent = [lead for lead in options.leads if lead not in names]
        if absent:
            return Outcome(record_id, None, f"declared lead(s) not in the record: {', '.join(absent)}")
        keep = [k for k, name in enumerate(names) if name in options.leads]
        signal, lead_names = signal[:, keep], [names[k] for k in keep]
    try:
        ecg, qc = standardize_record(signal, fs, lead_names, unit, settings)
    except RejectRecord as exc:
        return Outcome(record_id, None, str(exc))
    notes = [qc["qc_failed"]] if qc.get("qc_failed") else []
    if qc.get("qc_padded_samples"):
        notes.append(f"zero-padded {qc['qc_padded_samples']} samples to {settings.seconds:g} s")
    left_out = qc.get("windows_left_out", [])
    note = (f"{len(left_out)} of {len(left_out) + len(ecg)} windows left out: {qc['qc_windows_failed']}"
            if left_out else "")
    return Outcome(record_id, ecg, "; ".join(notes), {c: qc.get(c, "") for c in LEAD_COLUMNS},
                   qc.get("window_starts_s"), left_out, note)


def failure_reason(exc: Exception, root=None) -> str:
    """The reason a record's row gives for ``exc``: a reader's own message (``RecordError``,
    ``WfdbError``, ``RejectRecord``) as it is, anything else with its type; absolute paths below
    ``root`` are written relative to it (the record id says where the file is)."""
    reason = str(exc) if isinstance(exc, (RecordError, WfdbError, RejectRecord)) else f"{type(exc).__name__}: {exc}"
    reason = f"unreadable: {reason}"
    if root is not None:
        reason = reason.replace(f"{Path(root).resolve()}/", "").replace(f"{root}/", "")
    return reason


def _read_one(reader, item, settings: Settings, options: InputOptions) -> Outcome:
    """One item of ``reader``, read and standardized; whatever it raises is its row's reason."""
    try:
        raw = reader.load(item)
        return _standardize(item.record_id, raw.signal, raw.fs, raw.lead_names, raw.unit, settings,
                            options, raw.meta.get("channels"))
    except Exception as exc:        # each file is its own failure domain
        return Outcome(item.record_id, None, failure_reason(exc, getattr(reader, "root", None)))


# Reading in worker processes: files go out in chunks of this many; at most this many chunks per
# worker are in flight (read ahead of the consumer), which bounds the memory held; inputs with
# fewer files than one chunk per worker are read in this process (a pool would cost more).
READ_CHUNK = 64
READ_AHEAD_PER_WORKER = 4
_worker_args: tuple = ()


def _init_reader(*args) -> None:
    global _worker_args
    _worker_args = args


def _read_chunk(items: list) -> list[Outcome]:
    reader, settings, options = _worker_args
    return [_read_one(reader, item, settings, options) for item in items]


def read_workers(options: InputOptions) -> int:
    """How many processes read the files: ``options.workers``, or one per core this process may use
    (1, this process alone, where processes cannot be forked)."""
    import multiprocessing as mp
    if "fork" not in mp.get_all_start_methods():
        return 1
    if options.workers is not None:
        return max(1, int(options.workers))
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _read_parallel(reader, items: list, settings: Settings, options: InputOptions,
                   workers: int) -> Iterator[Outcome]:
    """The outcomes of ``items`` in their order, read by ``workers`` forked processes a chunk at a
    time, with a bounded number of chunks read ahead. Should a worker die (a reader's C library
    crashing), the chunks not yet returned are read in this process, as without workers."""
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    chunks = deque(items[start:start + READ_CHUNK] for start in range(0, len(items), READ_CHUNK))
    pending = deque()
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_init_reader,
                               initargs=(reader, settings, options))
    try:
        while chunks or pending:
            while chunks and len(pending) < workers * READ_AHEAD_PER_WORKER:
                chunk = chunks.popleft()
                pending.append((chunk, pool.submit(_read_chunk, chunk)))
            chunk, future = pending.popleft()
            try:
                outcomes = future.result()
            except BrokenProcessPool:
                rest = [item for part in (chunk, *(c for c, _ in pending), *chunks) for item in part]
                log.warning("a reading process died; the remaining %d files are read in this process", len(rest))
                yield from (_read_one(reader, item, settings, options) for item in rest)
                return
            yield from outcomes
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _reader_records(reader, settings: Settings, options: InputOptions) -> tuple[int, Iterator[Outcome]]:
    """Any reader (``items()`` / ``load(item)``); metadata rows without a waveform come out as
    rejected records, and so does every record whose reading or standardizing raises. Files are
    read by ``read_workers(options)`` processes where there are enough of them."""
    items, missing = reader.items()
    workers = read_workers(options)

    def gen():
        for record_id, reason in missing:
            yield Outcome(str(record_id), None, reason)
        if workers > 1 and len(items) >= workers * READ_CHUNK:
            yield from _read_parallel(reader, items, settings, options, workers)
        else:
            for item in items:
                yield _read_one(reader, item, settings, options)
    return len(items) + len(missing), gen()


# files that are parts of a record (signal files, annotations, sidecars), never records themselves
_PARTS = {".dat", ".mat", ".json", ".atr", ".qrs", ".ecg", ".edf", ".txt", ".md", ".parquet", ".h5", ".hdf5",
          ".gz", ".zip", ".tgz", ".tar"}
# files that hold signals ecgfm does not read from a folder: each gets a rejected row saying so,
# unless a WFDB header of the same name beside it makes it that record's signal file
_NOT_READ = {".dat": "a WFDB signal file without a .hea header of its name",
             ".mat": "a WFDB (or MATLAB) signal file without a .hea header of its name",
             ".edf": "EDF, which ecgfm does not read (convert it to WFDB, e.g. with wfdb-python's edf2mit)",
             ".bdf": "BDF, which ecgfm does not read", ".scp": "SCP-ECG, which ecgfm does not read",
             ".h5": "HDF5 inside a folder: give the file itself as the input (CODE-style tracings or a "
                    "standardized shard)"}
_NOT_READ[".hdf5"] = _NOT_READ[".h5"]


class FileReader:
    """Every ECG file below a folder (or one file), each read by its format's reader:
    ``.hea`` WFDB, ``.dcm`` (or any file with DICOM's ``DICM`` preamble) DICOM, ``.xml`` MUSE,
    CardioSoft, HL7 aECG or Philips, ``.npy``/``.csv`` with a sidecar. The record id is the path
    relative to the folder without its suffix (with it, where two files would share an id). The
    segment and layout headers that a multi-segment WFDB record lists are parts of that record.
    Signal files of formats it does not read (EDF, SCP-ECG, a ``.dat`` without its header, HDF5
    inside a folder) are records too, rejected with the reason, so that none is skipped unseen."""

    SUFFIXES = {".hea": "wfdb", ".dcm": "dicom", ".xml": "xml", ".npy": "array", ".csv": "array"}

    def __init__(self, path):
        path = Path(path)
        self.root = path if path.is_dir() else path.parent
        candidates = sorted(p for p in (path.rglob("*") if path.is_dir() else [path]) if p.is_file())
        self.kinds = {}
        headers = {p.with_suffix("") for p in candidates if p.suffix.lower() == ".hea"}
        for p in candidates:
            suffix = p.suffix.lower()
            kind = self.SUFFIXES.get(suffix)
            if kind is None and suffix not in _PARTS and is_dicom_file(p):
                kind = "dicom"
            if kind is None and suffix in _NOT_READ and p.with_suffix("") not in headers:
                kind = "not read"
            if kind is not None:
                self.kinds[p] = kind
        for part in segment_headers([p for p, k in self.kinds.items() if k == "wfdb"]):
            self.kinds.pop(part, None)
        self.files = list(self.kinds)

    def items(self):
        if not self.files:
            raise FileNotFoundError(self.root)
        from collections import Counter
        stems = [f.relative_to(self.root).with_suffix("" if f.suffix.lower() in self.SUFFIXES else f.suffix).as_posix()
                 for f in self.files]        # a file found by its content keeps its whole name
        counts = Counter(stems)
        items = [Item(stem if counts[stem] == 1 else f.relative_to(self.root).as_posix(), f)
                 for f, stem in zip(self.files, stems)]
        return items, []

    def load(self, item):
        path = item.locator
        kind = self.kinds.get(path) or self.SUFFIXES[path.suffix.lower()]
        if kind == "not read":
            raise RecordError(_NOT_READ[path.suffix.lower()])
        if kind == "wfdb":
            rel = path.relative_to(self.root).with_suffix("")
            return WFDBFolderReader(self.root).load(Item(rel.as_posix(), rel))
        if kind == "dicom":
            return read_dicom(path)
        if kind == "array":
            return read_array(path)
        flavour = xml_kind(path)
        if flavour is None:
            parse_xml(path)                 # an unreadable file says so
            raise RecordError("XML that is none of MUSE RestingECG, CardioSoft CardiologyXML, HL7 aECG "
                              "AnnotatedECG or Philips restingecgdata")
        return XML_READERS[flavour](path)


def _code_records(path: Path, settings: Settings, options: InputOptions) -> tuple[int, Iterator[Outcome]]:
    import h5py
    f = h5py.File(path, "r")
    tracings = f["tracings"]
    if tracings.ndim != 3 or tracings.shape[2] != 12:
        raise InputError(f"{path}: tracings has shape {tracings.shape}; expected [records, samples, 12] "
                         f"with leads {', '.join(CODE_LEADS)}")
    ids = [str(int(i)) for i in f["exam_id"][:]] if "exam_id" in f else [str(i) for i in range(len(tracings))]

    def gen():
        with f:
            for k, record_id in enumerate(ids):
                if record_id == "0" and "exam_id" in f and not np.any(tracings[k]):
                    continue        # CODE-15%'s padding row: not a record
                try:
                    signal, _ = code_signal(tracings[k])
                    yield _standardize(record_id, signal, options.fs, CODE_LEADS, options.unit, settings, options)
                except Exception as exc:        # each record is its own failure domain
                    yield Outcome(record_id, None, str(exc) if isinstance(exc, RecordError)
                                  else failure_reason(exc))
    return len(ids), gen()


def _shard_records(paths: list[Path], settings: Settings, options: InputOptions) -> tuple[int, Iterator[Outcome]]:
    import h5py

    from .leads import restrict_to_leads
    shape = (len(settings.leads), settings.n_samples)
    total = 0
    for path in paths:
        with h5py.File(path, "r") as f:
            if tuple(f["ecg"].shape[1:]) != shape:
                raise InputError(f"{path}: standardized records of shape {tuple(f['ecg'].shape[1:])}, "
                                 f"the model expects {shape}")
            total += len(f["ecg"])
    keep = options.leads if isinstance(options.leads, tuple) else settings.leads

    def gen():
        for path in paths:
            with h5py.File(path, "r") as f:
                ids, ecg = f["record_id"].asstr()[:], f["ecg"]
                for start in range(0, len(ids), 1024):      # contiguous blocks, not a read per record
                    block = np.asarray(ecg[start:start + 1024], dtype=np.float32)
                    if tuple(keep) != tuple(settings.leads):
                        block = restrict_to_leads(block, keep, settings.leads)
                    for record_id, x in zip(ids[start:start + 1024], block):
                        yield Outcome(record_id, x, "", _shard_leads(keep, settings.leads))
    return total, gen()


def _shard_leads(keep, leads) -> dict:
    limb = [lead for lead in leads[:6] if lead in keep]
    derived = [lead for lead in leads[:6] if lead not in keep] if len(limb) >= 2 else []
    return {"leads_present": ",".join(lead for lead in leads if lead in keep),
            "leads_derived": ",".join(derived),
            "leads_zeroed": ",".join(lead for lead in leads if lead not in keep and lead not in derived)}


def open_input(path, preprocessing: dict, options: InputOptions = InputOptions()
               ) -> tuple[str, int, Iterator[Outcome]]:
    """(format name, number of records, iterator of standardized outcomes) for ``path``."""
    import h5py
    settings = settings_for(preprocessing, options)
    if hasattr(path, "items") and hasattr(path, "load"):
        return (type(path).__name__, *_reader_records(path, settings, options))
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir() and (path / "manifest.parquet").exists():
        shards = sorted(path.glob("shard-*.h5"))
        if not shards:
            raise InputError(f"{path}: manifest.parquet but no shard-*.h5 beside it")
        return ("standardized shards", *_shard_records(shards, settings, options))
    if path.is_file() and path.suffix.lower() in (".h5", ".hdf5"):
        try:
            with h5py.File(path, "r") as f:
                keys = set(f.keys())
        except OSError as exc:
            raise InputError(f"{path}: not a readable HDF5 file ({exc})") from None
        if "tracings" in keys:
            return ("CODE-style HDF5", *_code_records(path, settings, options))
        if "ecg" in keys and "record_id" in keys:
            return ("standardized shard", *_shard_records([path], settings, options))
        raise InputError(f"{path}: HDF5 without a 'tracings' (CODE layout) or 'ecg' (standardized shard) dataset; "
                         f"it has {sorted(keys)}")
    reader = FileReader(path)
    if not reader.files or set(reader.kinds.values()) == {"not read"}:
        what = "no records found" if path.is_dir() else "unknown input format"
        unread = [p for p, kind in reader.kinds.items() if kind == "not read"]
        found = (f"; it holds {len(unread)} file(s) of formats ecgfm does not read, e.g. "
                 f"{unread[0].relative_to(reader.root)}: {_NOT_READ[unread[0].suffix.lower()]}") if unread else ""
        raise InputError(f"{path}: {what} (expected WFDB .hea, DICOM .dcm, MUSE, CardioSoft, HL7 aECG or "
                         f"Philips .xml, .npy/.csv with a JSON sidecar, a CODE-style .hdf5 file, or "
                         f"standardized shards){found}")
    kinds = sorted(set(reader.kinds.values()) - {"not read"})
    name = {"wfdb": "WFDB folder", "dicom": "DICOM", "xml": "XML", "array": "arrays"}
    return (" + ".join(name[k] for k in kinds), *_reader_records(reader, settings, options))


def batched(outcomes: Iterator[Outcome], size: int) -> Iterator[list[Outcome]]:
    batch = []
    for outcome in outcomes:
        batch.append(outcome)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_records(path, preprocessing: dict, fn, batch_size: int = 256, progress: bool = False,
                columns="embedding", options: InputOptions = InputOptions(), aggregate=None):
    """Standardize every record of ``path`` and apply ``fn`` ([n, leads, samples] -> [n, k]) in
    batches. Returns a DataFrame: ``record_id``, ``status`` (ok / rejected), ``reason`` (the
    rejection, or a kept record's QC flags), the lead provenance columns, then either one list
    column named ``columns`` or, when ``columns`` is a list, one column per output. A windowed
    record's outputs are combined by ``aggregate`` (default: the mean over its windows), or kept
    one row per window (``window``, ``start_s``) with ``options.per_window``."""
    import pandas as pd
    from tqdm import tqdm
    aggregate = aggregate or (lambda values: values.mean(axis=0))
    fmt, total, outcomes = open_input(path, preprocessing, options)
    rows = []
    bar = tqdm(total=total, unit="rec", desc=f"{fmt}", disable=not progress)
    for batch in batched(outcomes, batch_size):
        ok = [o for o in batch if o.ecg is not None]
        stacked = [o.ecg if o.ecg.ndim == 3 else o.ecg[None] for o in ok]
        out = fn(np.concatenate(stacked)) if ok else np.empty((0, 0))
        parts = iter(np.split(out, np.cumsum([len(s) for s in stacked])[:-1]) if ok else [])
        for o in batch:
            base = {"record_id": o.record_id, "status": "ok" if o.ecg is not None else "rejected",
                    "reason": o.reason, **{c: o.leads.get(c) for c in LEAD_COLUMNS}}
            if o.ecg is None:
                rows.append({**base, "value": None})
                continue
            values = next(parts)
            if options.per_window and o.starts is not None:
                windows = sorted([(start, v, "ok", o.reason) for start, v in zip(o.starts, values)]
                                 + [(start, None, "rejected", why) for start, why in o.left_out],
                                 key=lambda w: w[0])
                rows += [{**base, "status": status, "reason": why, "window": k, "start_s": start, "value": v}
                         for k, (start, v, status, why) in enumerate(windows)]
            else:
                reason = "; ".join(note for note in (o.reason, o.window_note) if note)
                rows.append({**base, "reason": reason, "windows": len(values) if o.starts else None,
                             "windows_left_out": len(o.left_out) if o.starts else None,
                             "value": aggregate(values)})
        bar.update(len(batch))
    bar.close()
    frame = pd.DataFrame(rows)
    for col in ("window", "start_s", "windows", "windows_left_out"):
        if col in frame and frame[col].isna().all():
            frame = frame.drop(columns=col)
    values = frame.pop("value") if len(frame) else pd.Series(dtype=object)
    if isinstance(columns, str):
        frame[columns] = [None if v is None else np.asarray(v, dtype=np.float32) for v in values]
    else:
        for k, name in enumerate(columns):
            frame[name] = [np.nan if v is None else float(v[k]) for v in values]
    frame.attrs["format"] = fmt
    return frame


def embed_records(encoder, path, batch_size: int = 256, progress: bool = False,
                  options: InputOptions = InputOptions()):
    """Embeddings of every record of ``path`` with a loaded ``ecgfm.encoder.Encoder``: a
    DataFrame, one row per record (or window), the embedding a list column."""
    from .encoder import embed_array
    return run_records(path, encoder.config["preprocessing"],
                       lambda x: embed_array(encoder.model, x, batch_size, encoder.device),
                       batch_size, progress, "embedding", options)


def predict_records(model, config: dict, path, batch_size: int = 256, progress: bool = False,
                    options: InputOptions = InputOptions()):
    """Probabilities of each task of a fine-tuned classifier (``ecgfm.finetune.load_classifier``);
    where the classifier carries decision thresholds (chosen on the validation fold), also one
    0/1 column per task, ``<task>_positive``."""
    import torch

    from .finetune import predict_logits
    device = next(model.parameters()).device

    def probabilities(x):
        return torch.sigmoid(torch.from_numpy(predict_logits(model, x, batch_size, device))).numpy()
    tasks = list(config["tasks"])
    frame = run_records(path, config["preprocessing"], probabilities, batch_size, progress, tasks, options)
    for label in config.get("labels", []):
        if label.get("threshold") is not None and label["task"] in frame:
            p = frame[label["task"]]
            frame[f"{label['task']}_positive"] = (p >= label["threshold"]).astype("Int64").where(p.notna())
    return frame

