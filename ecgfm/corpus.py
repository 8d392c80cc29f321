"""The standardization stage for one source: reader -> standardized shards + manifest + quarantine.

``standardize_source`` is what ``workflow_scripts/standardize.py`` calls. It

* lists the records (metadata rows without a waveform go straight to the quarantine),
* loads and standardizes them in worker processes, in order, a chunk at a time,
* writes shards as it goes, then ``manifest.parquet``, ``quarantine.parquet`` and ``summary.json``
  (counts per check and each lead's median peak-to-peak amplitude),
* checks that records in = kept + quarantined, and
* stops with a clear message when a whole source is wrong (most records failing one check,
  e.g. a unit error), instead of writing a corpus of rejects.
"""
from __future__ import annotations

import json
import logging
import multiprocessing as mp
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from .readers import ArchiveError, Item, RecordError
from .shards import ShardWriter, remove_shards
from .standardize import RejectRecord, Settings, standardize_record
from .wfdb import WfdbError

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """The source as a whole cannot be standardized (wrong path, wrong unit, wrong format)."""


# Worker state: set once per process by the pool initializer (fork copies it for free).
_WORKER: dict = {}


def _init_worker(reader, settings, source, dtype):
    _WORKER.update(reader=reader, settings=settings, source=source, dtype=dtype)


def _process_chunk(chunk: list[Item]) -> list[tuple]:
    """Load and standardize a chunk of items; one ("ok", ...) or ("rejected", ...) per item."""
    reader, settings, source = _WORKER["reader"], _WORKER["settings"], _WORKER["source"]
    out = []
    for item in chunk:
        try:
            raw = reader.load(item)
            ecg, qc = standardize_record(raw.signal, raw.fs, raw.lead_names, raw.unit, settings)
        except (RecordError, RejectRecord, WfdbError) as exc:
            out.append(("rejected", item.record_id, str(exc), item.meta))
            continue
        except Exception as exc:        # each record is its own failure domain, whatever a reader raises
            out.append(("rejected", item.record_id, f"unreadable: {type(exc).__name__}: {exc}",
                        item.meta))
            continue
        row = {"record_id": item.record_id, "source": source, **item.meta, **raw.meta,
               "orig_fs": float(raw.fs), "orig_samples": int(raw.signal.shape[0]), **qc}
        out.append(("ok", item.record_id, ecg.astype(_WORKER["dtype"]), row))  # cast here: half the IPC
    return out


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def amplitude_summary(lead_amplitudes: list, leads) -> dict:
    """Per-lead median, over the kept records, of the robust peak-to-peak amplitude (mV), and its
    median over leads (``all``): what shows a scale error of a whole source at a glance, against
    PTB-XL's figures in the README."""
    if not lead_amplitudes:
        return {}
    per_lead = np.median(np.stack(lead_amplitudes).astype(np.float64), axis=0)
    out = {lead: round(float(v), 4) for lead, v in zip(leads, per_lead)}
    out["all"] = round(float(np.median(per_lead)), 4)
    return out


def _reason_kinds(reason: str) -> list[str]:
    """The checks a reason comes from (reasons of several checks are joined by '; ')."""
    return [part.split(":")[0].split("(")[0].strip() for part in reason.split("; ") if part]


def standardize_source(reader, out_dir, source: str, settings: Settings, shard_size: int,
                       dtype: str = "float16", compression: str | None = None, threads: int = 1,
                       chunk_size: int = 64, progress: bool = True) -> dict:
    """Standardize every record of ``reader`` into ``out_dir``; returns the summary dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_shards(out_dir)
    try:
        items, rejected = reader.items()
    except ArchiveError as exc:
        raise SourceError(f"{source}: {exc}") from None
    if not items:
        raise SourceError(f"{source}: none of the {len(rejected)} metadata rows has a waveform under "
                          f"{getattr(reader, 'root', '?')} (e.g. {rejected[0][1] if rejected else 'no rows'})")
    quarantine = [{"record_id": rid, "source": source, "reason": reason} for rid, reason in rejected]
    n_in = len(items) + len(rejected)
    log.info("%s: %d records with a waveform, %d metadata rows without", source, len(items), len(rejected))

    writer = ShardWriter(out_dir, len(settings.leads), settings.n_samples, shard_size, dtype, compression)
    rows, lead_amplitudes = [], []
    ctx = mp.get_context("fork")
    chunks = list(_chunks(items, chunk_size))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(items), desc=f"standardize {source}", unit="rec", mininterval=2)
    with ctx.Pool(max(1, threads), initializer=_init_worker, initargs=(reader, settings, source, dtype)) as pool:
        for results in pool.imap(_process_chunk, chunks):
            for status, record_id, payload, meta in results:
                if status == "ok":
                    shard, row = writer.add(record_id, payload)
                    lead_amplitudes.append(meta.pop("lead_peak_to_peak_mv"))
                    rows.append({**meta, "shard": shard, "row": row})
                else:
                    quarantine.append({"record_id": record_id, "source": source, "reason": payload,
                                       "patient_id": meta.get("patient_id")})
            if bar is not None:
                bar.update(len(results))
    writer.flush()
    if bar is not None:
        bar.close()

    manifest = pd.DataFrame(rows)
    quarantined = pd.DataFrame(quarantine, columns=["record_id", "source", "reason", "patient_id"])
    if len(manifest) + len(quarantined) != n_in:
        raise SourceError(f"{source}: {n_in} records in but {len(manifest)} kept + "
                          f"{len(quarantined)} quarantined")
    if writer.written != len(manifest):
        raise SourceError(f"{source}: {writer.written} records in shards but {len(manifest)} in the manifest")

    quarantined_by_check = Counter(k for r in quarantined["reason"] for k in _reason_kinds(r))
    flagged_by_check = Counter(k for r in manifest.get("qc_failed", []) if r for k in _reason_kinds(r))
    qc = settings.qc
    if n_in >= qc.source_check_min_records:
        # a partial copy (metadata rows without waveforms) is legitimate: only the checks count
        failing = {check: count for check, count in (quarantined_by_check + flagged_by_check).items()
                   if check != "no waveform" and count > qc.source_failure_fraction * n_in}
        if failing:
            remove_shards(out_dir)
            check = max(failing, key=failing.get)
            example = next(r for r in list(quarantined["reason"]) + list(manifest.get("qc_failed", []))
                           if r and check in _reason_kinds(r))
            listed = ", ".join(f"'{c}' ({n} of {n_in})" for c, n in failing.items())
            raise SourceError(
                f"{source}: most records fail the same check(s): {listed}; e.g. '{example}'. The "
                f"source as configured looks wrong: check its path, reader, unit and lead names in "
                f"config.yaml (sources.{source}).")

    summary = {"source": source, "records_in": n_in, "kept": len(manifest),
               "quarantined": len(quarantined), "kept_with_qc_flags": sum(flagged_by_check.values()),
               "shards": writer.n_shards, "quarantined_by_check": dict(quarantined_by_check),
               "kept_with_qc_flags_by_check": dict(flagged_by_check),
               "median_peak_to_peak_mv": amplitude_summary(lead_amplitudes, settings.leads),
               "settings": {"fs": settings.fs, "seconds": settings.seconds, "leads": list(settings.leads),
                            "dtype": dtype,
                            "amplitude_scale": settings.amplitude_scale}}
    manifest.to_parquet(out_dir / "manifest.parquet", index=False)
    quarantined.to_parquet(out_dir / "quarantine.parquet", index=False)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
