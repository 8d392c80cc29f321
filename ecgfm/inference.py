"""Using a model on one's own ECGs: input formats, the training standardization, embeddings and
predictions, one row per record.

Inputs (``open_input``):

* a folder holding ``manifest.parquet``: standardized shards written by ecgfm (used as stored);
* a ``.h5``/``.hdf5`` file with a ``tracings`` dataset [n, samples, 12]: the CODE-15% layout
  (leads I, II, III, aVR, aVL, aVF, V1-V6; ``--fs`` 400 Hz and mV by default; record ids from
  ``exam_id`` when present); zero padding is stripped as in training;
* a ``.h5`` file with an ``ecg`` dataset: one standardized shard;
* any other folder: WFDB records (``.hea`` + ``.dat``/``.mat``, searched recursively), leads by name.

Raw records go through ``ecgfm.standardize.standardize_record`` with the model's preprocessing
(rate, duration, lead order, mV) and the default quality checks, exactly as the corpus was built.
A record that cannot be read or fails a check gets ``status = rejected`` and its reason; it is
listed, never dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .readers import RecordError, WFDBFolderReader, code_signal
from .standardize import RejectRecord, Settings, standardize_record
from .wfdb import WfdbError

CODE_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


class InputError(ValueError):
    """The input as a whole cannot be used (unknown format, empty, wrong leads)."""


@dataclass
class Outcome:
    record_id: str
    ecg: np.ndarray | None          # [leads, samples] standardized, or None when rejected
    reason: str = ""                # why rejected, or the QC flags of a kept record


def settings_for(preprocessing: dict, keep_flagged: bool = False, pad_short: bool = False) -> Settings:
    """The standardization of training for a model's ``preprocessing``; ``pad_short`` zero-pads
    records of 7 s or more to the full duration, as the CODE-15% and SaMi-Trop corpora were."""
    return Settings(fs=float(preprocessing["fs"]), seconds=float(preprocessing["seconds"]),
                    leads=tuple(preprocessing["leads"]), keep_flagged=keep_flagged, pad_short=pad_short)


def _standardize(record_id, signal, fs, lead_names, unit, settings) -> Outcome:
    try:
        ecg, qc = standardize_record(signal, fs, lead_names, unit, settings)
    except RejectRecord as exc:
        return Outcome(record_id, None, str(exc))
    notes = [qc["qc_failed"]] if qc.get("qc_failed") else []
    if qc.get("qc_padded_samples"):
        notes.append(f"zero-padded {qc['qc_padded_samples']} samples to {settings.seconds:g} s")
    return Outcome(record_id, ecg, "; ".join(notes))


def _wfdb_records(folder: Path, settings: Settings) -> tuple[int, Iterator[Outcome]]:
    reader = WFDBFolderReader(folder, source="input")
    try:
        return _reader_records(reader, settings)
    except FileNotFoundError:
        raise InputError(f"{folder}: no records found (expected WFDB .hea files, a CODE-style HDF5 file, "
                         f"or standardized shards with manifest.parquet)") from None


def _reader_records(reader, settings: Settings) -> tuple[int, Iterator[Outcome]]:
    """Any reader of ``ecgfm.readers`` (``items()`` / ``load(item)``); metadata rows without a
    waveform come out as rejected records."""
    items, missing = reader.items()

    def gen():
        for record_id, reason in missing:
            yield Outcome(str(record_id), None, reason)
        for item in items:
            try:
                raw = reader.load(item)
            except (RecordError, WfdbError, OSError, ValueError) as exc:
                yield Outcome(item.record_id, None, f"unreadable: {exc}")
                continue
            yield _standardize(item.record_id, raw.signal, raw.fs, raw.lead_names, raw.unit, settings)
    return len(items) + len(missing), gen()


def _code_records(path: Path, settings: Settings, fs: float, unit: str) -> tuple[int, Iterator[Outcome]]:
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
                except RecordError as exc:
                    yield Outcome(record_id, None, str(exc))
                    continue
                yield _standardize(record_id, signal, fs, CODE_LEADS, unit, settings)
    return len(ids), gen()


def _shard_records(paths: list[Path], settings: Settings) -> tuple[int, Iterator[Outcome]]:
    import h5py
    shape = (len(settings.leads), settings.n_samples)
    total = 0
    for path in paths:
        with h5py.File(path, "r") as f:
            if tuple(f["ecg"].shape[1:]) != shape:
                raise InputError(f"{path}: standardized records of shape {tuple(f['ecg'].shape[1:])}, "
                                 f"the model expects {shape}")
            total += len(f["ecg"])

    def gen():
        for path in paths:
            with h5py.File(path, "r") as f:
                ids, ecg = f["record_id"].asstr()[:], f["ecg"]
                for start in range(0, len(ids), 1024):      # contiguous blocks, not a read per record
                    block = np.asarray(ecg[start:start + 1024], dtype=np.float32)
                    for record_id, x in zip(ids[start:start + 1024], block):
                        yield Outcome(record_id, x)
    return total, gen()


def open_input(path, preprocessing: dict, fs: float = 400.0, unit: str = "mV",
               keep_flagged: bool = False, pad_short: bool = False) -> tuple[str, int, Iterator[Outcome]]:
    """(format name, number of records, iterator of standardized outcomes) for ``path``, which may
    also be a reader object of ``ecgfm.readers`` (e.g. ``make_reader("code15", root, "mine")``)."""
    import h5py
    settings = settings_for(preprocessing, keep_flagged, pad_short)
    if hasattr(path, "items") and hasattr(path, "load"):
        return (type(path).__name__, *_reader_records(path, settings))
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / "manifest.parquet").exists():
            shards = sorted(path.glob("shard-*.h5"))
            if not shards:
                raise InputError(f"{path}: manifest.parquet but no shard-*.h5 beside it")
            return ("standardized shards", *_shard_records(shards, settings))
        return ("WFDB folder", *_wfdb_records(path, settings))
    if path.suffix.lower() in (".h5", ".hdf5"):
        try:
            with h5py.File(path, "r") as f:
                keys = set(f.keys())
        except OSError as exc:
            raise InputError(f"{path}: not a readable HDF5 file ({exc})") from None
        if "tracings" in keys:
            return ("CODE-style HDF5", *_code_records(path, settings, fs, unit))
        if "ecg" in keys and "record_id" in keys:
            return ("standardized shard", *_shard_records([path], settings))
        raise InputError(f"{path}: HDF5 without a 'tracings' (CODE layout) or 'ecg' (standardized shard) dataset; "
                         f"it has {sorted(keys)}")
    raise InputError(f"{path}: unknown input format (expected a WFDB folder, a CODE-style .hdf5 file, "
                     f"or standardized shards)")


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
                columns="embedding", **input_options):
    """Standardize every record of ``path`` and apply ``fn`` ([n, leads, samples] -> [n, k]) in
    batches. Returns a DataFrame: ``record_id``, ``status`` (ok / rejected), ``reason`` (the
    rejection, or a kept record's QC flags), then either one list column named ``columns`` or,
    when ``columns`` is a list, one column per output."""
    import pandas as pd
    from tqdm import tqdm
    fmt, total, outcomes = open_input(path, preprocessing, **input_options)
    ids, status, reasons, values = [], [], [], []
    bar = tqdm(total=total, unit="rec", desc=f"{fmt}", disable=not progress)
    for batch in batched(outcomes, batch_size):
        ok = [o for o in batch if o.ecg is not None]
        out = fn(np.stack([o.ecg for o in ok])) if ok else np.empty((0, 0))
        rows = iter(out)
        for o in batch:
            ids.append(o.record_id)
            status.append("ok" if o.ecg is not None else "rejected")
            reasons.append(o.reason)
            values.append(next(rows) if o.ecg is not None else None)
        bar.update(len(batch))
    bar.close()
    frame = pd.DataFrame({"record_id": ids, "status": status, "reason": reasons})
    if isinstance(columns, str):
        frame[columns] = [None if v is None else np.asarray(v, dtype=np.float32) for v in values]
    else:
        for k, name in enumerate(columns):
            frame[name] = [np.nan if v is None else float(v[k]) for v in values]
    frame.attrs["format"] = fmt
    return frame


def predict_records(model, config: dict, path, batch_size: int = 256, progress: bool = False, **input_options):
    """Probabilities of each task of a fine-tuned classifier (``ecgfm.finetune.load_classifier``)."""
    import torch

    from .finetune import predict_logits
    device = next(model.parameters()).device

    def probabilities(x):
        return torch.sigmoid(torch.from_numpy(predict_logits(model, x, batch_size, device))).numpy()
    return run_records(path, config["preprocessing"], probabilities, batch_size, progress, list(config["tasks"]),
                       **input_options)
