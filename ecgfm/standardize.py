"""Standardization of one record: 12 leads by name, mV, 250 Hz, 10 s, quality control.

Pure functions on arrays; no file I/O here (``ecgfm.shards`` writes, ``ecgfm.readers`` read).
Every number comes from the ``standardize`` block of the config (see ``Settings``).

Order of operations in ``standardize_record`` and why:
 1. leads selected by name into canonical order (missing limb leads derived exactly from two
    recorded ones) -> any other missing lead is a rejection, or zeros where the settings allow
    (inference on records with fewer leads; zeroed leads are left out of the quality checks);
 2. to mV with the unit the reader reports (times the source's ``amplitude_scale``, 1 unless a
    user corrects a known scale error);
 3. sampling-rate check against what the source is known to use (a header that lies);
 4. duration check (before resampling, on the original samples);
 5. NaN runs: short ones are interpolated (and counted), long ones fail the record;
 6. flat leads and saturation, on the original samples (where ADC plateaus are exact);
    steps 5 and 6 judge the samples that are used (``used_span``): the centre window of a longer
    record, so that a monitor record with a null segment or a lead-off hour elsewhere is judged by
    its centre 10 s; every sample when windows slide over the whole record;
 7. anti-aliased polyphase resampling to the target rate (``scipy.signal.resample_poly``);
 8. centre crop to the target length, or zero padding when the config allows (flagged); or, for
    inference on longer records, every window of the target length at a stride;
 9. amplitude plausibility (unit errors) and limb-lead consistency (swapped leads).

The QC values returned include ``lead_peak_to_peak_mv`` (one value per lead), which
``ecgfm.corpus`` summarizes per source instead of storing per record.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy.signal import firwin, resample_poly

from .leads import CANONICAL_LEADS, complete_leads, lead_index, limb_lead_residuals
from .wfdb import unit_to_mv


class RejectRecord(Exception):
    """The record cannot be standardized; the message is the human-readable reason.

    Structural failures (missing lead, wrong rate, too short, unreadable) always reject. Quality
    failures (NaN runs, flat leads, saturation, amplitude, limb-lead consistency) reject unless the
    source keeps flagged records (``keep_flagged``), in which case the reasons go to ``qc_failed``.
    """


@dataclass(frozen=True)
class QCSettings:
    max_nan_run_s: float = 0.04
    flat_std_mv: float = 0.005
    max_saturation_fraction: float = 0.05
    amplitude_range_mv: tuple[float, float] = (0.1, 10.0)
    max_limb_residual: float = 0.5
    source_failure_fraction: float = 0.5
    source_check_min_records: int = 50


@dataclass(frozen=True)
class Settings:
    fs: float = 250.0
    seconds: float = 10.0
    leads: tuple[str, ...] = CANONICAL_LEADS
    pad_short: bool = False
    min_seconds_when_padding: float = 7.0
    expected_fs: float | None = None
    keep_flagged: bool = False
    amplitude_scale: float = 1.0      # a per-source correction of a known scale error (x after mV)
    zero_missing_leads: bool = False  # a lead the record lacks (and cannot derive) is zeros, not a rejection
    window_stride_s: float | None = None   # None: centre crop; else sliding windows this far apart
    qc: QCSettings = field(default_factory=QCSettings)

    @property
    def n_samples(self) -> int:
        return int(round(self.fs * self.seconds))

    @classmethod
    def from_config(cls, block: dict, expected_fs: float | None = None) -> "Settings":
        qc = dict(block.get("qc", {}))
        if "amplitude_range_mv" in qc:
            qc["amplitude_range_mv"] = tuple(qc["amplitude_range_mv"])
        return cls(fs=float(block["fs"]), seconds=float(block["seconds"]),
                   leads=tuple(block.get("leads", CANONICAL_LEADS)),
                   pad_short=bool(block.get("pad_short", False)),
                   min_seconds_when_padding=float(block.get("min_seconds_when_padding", 7.0)),
                   keep_flagged=bool(block.get("keep_flagged", False)),
                   amplitude_scale=float(block.get("amplitude_scale", 1.0)),
                   expected_fs=expected_fs, qc=QCSettings(**qc))


# --- numerics ------------------------------------------------------------------------------

@lru_cache(maxsize=64)
def anti_aliasing_fir(up: int, down: int) -> np.ndarray:
    """The low-pass FIR that ``resample_poly`` designs by default (Kaiser window, beta 5,
    cutoff at the lower Nyquist, 10 zero crossings each side), designed once per ratio."""
    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis with a Kaiser-windowed anti-aliasing FIR.

    The rational factor fs_out/fs_in is found exactly (400 -> 250 Hz is 5/8); rates that are not
    close to a ratio of small integers are refused rather than silently approximated.
    """
    if fs_in == fs_out:
        return np.asarray(x, dtype=np.float32)
    ratio = Fraction(fs_out / fs_in).limit_denominator(10_000)
    if abs(float(ratio) - fs_out / fs_in) > 1e-9 * fs_out / fs_in:
        raise RejectRecord(f"cannot resample {fs_in:g} Hz to {fs_out:g} Hz by a rational factor")
    up, down = ratio.numerator, ratio.denominator
    y = resample_poly(np.asarray(x, dtype=np.float64), up, down, axis=-1,
                      window=anti_aliasing_fir(up, down))
    return y.astype(np.float32)


def crop_or_pad(x: np.ndarray, n: int, allow_pad: bool) -> tuple[np.ndarray, int]:
    """Centre-crop the last axis to ``n`` samples, or zero-pad it symmetrically when allowed.

    Returns (array, number of padded samples).
    """
    length = x.shape[-1]
    if length >= n:
        start = (length - n) // 2
        return x[..., start : start + n], 0
    if not allow_pad:
        raise RejectRecord(f"too short after resampling: {length} samples < {n}")
    missing = n - length
    left = missing // 2
    pad = [(0, 0)] * (x.ndim - 1) + [(left, missing - left)]
    return np.pad(x, pad), missing


def longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True along the last axis (max over the other axes)."""
    m = np.asarray(mask, dtype=np.int8).reshape(-1, mask.shape[-1])
    padded = np.pad(m, ((0, 0), (1, 1)))
    diff = np.diff(padded, axis=1)
    best = 0
    for row in range(m.shape[0]):
        starts = np.flatnonzero(diff[row] == 1)
        ends = np.flatnonzero(diff[row] == -1)
        if starts.size:
            best = max(best, int((ends - starts).max()))
    return best


def interpolate_nans(x: np.ndarray, names=None) -> np.ndarray:
    """Linear interpolation over NaN samples of each lead ([leads, n], lead ``names`` for the
    reason); edges take the nearest value."""
    out = x.copy()
    t = np.arange(x.shape[-1])
    for row in range(x.shape[0]):
        bad = np.isnan(x[row])
        if bad.any():
            if bad.all():
                raise RejectRecord(f"lead {names[row] if names is not None else row} is entirely NaN "
                                   f"(no valid sample in the record)")
            out[row, bad] = np.interp(t[bad], t[~bad], x[row, ~bad])
    return out


def saturation_fraction(x: np.ndarray) -> float:
    """Largest fraction of a lead's samples sitting exactly at that lead's min or max (ADC clipping)."""
    hi = (x == x.max(axis=-1, keepdims=True)).sum(axis=-1)
    lo = (x == x.min(axis=-1, keepdims=True)).sum(axis=-1)
    return float((np.maximum(hi, lo) / x.shape[-1]).max())


def lead_peak_to_peak_mv(x: np.ndarray, tail: float = 0.005) -> np.ndarray:
    """A robust peak-to-peak amplitude of each lead ([leads, n] -> [leads]): the spread between
    the samples of rank ``tail`` and ``1 - tail`` (nearest rank; one partial sort for both)."""
    n = x.shape[-1]
    lo, hi = int(round(tail * (n - 1))), int(round((1 - tail) * (n - 1)))
    part = np.partition(x, (lo, hi), axis=-1)
    return part[..., hi] - part[..., lo]


def peak_to_peak_mv(x: np.ndarray, tail: float = 0.005) -> float:
    """Median over leads of ``lead_peak_to_peak_mv``."""
    return float(np.median(lead_peak_to_peak_mv(x, tail)))


# --- one record ----------------------------------------------------------------------------

def select_leads(signal: np.ndarray, names: list[str], wanted: tuple[str, ...],
                 zero_missing: bool = False) -> tuple[np.ndarray, dict]:
    """[n_samples, n_sig] with named columns -> ([len(wanted), n_samples], lead provenance), by
    lead name (``ecgfm.leads.complete_leads``: missing limb leads derived from two recorded ones,
    other missing leads a rejection, or zeros with ``zero_missing``)."""
    try:
        index = lead_index(names)
        return complete_leads({lead: signal[:, k] for lead, k in index.items()}, wanted, zero_missing)
    except ValueError as exc:
        raise RejectRecord(str(exc)) from None


def window_starts(length: int, n: int, stride: int) -> list[int]:
    """Starts of windows of ``n`` samples every ``stride`` samples over ``length``, plus one ending
    at the last sample when the stride leaves a tail, so that no sample is left out ([0] when the
    record is no longer than a window)."""
    if length <= n:
        return [0]
    starts = list(range(0, length - n + 1, max(1, stride)))
    if starts[-1] + n < length:
        starts.append(length - n)
    return starts


def used_span(n_orig: int, fs: float, settings: Settings) -> tuple[int, int]:
    """The original samples [start, stop) that the output is made of: the centre crop of a record
    longer than the target duration (a few samples more, for the resampling), else all of them
    (shorter records, and sliding windows, which cover every sample)."""
    n_out = int(np.ceil(n_orig * settings.fs / fs))
    if settings.window_stride_s is not None or n_out <= settings.n_samples:
        return 0, n_orig
    start = (n_out - settings.n_samples) // 2
    return (int(np.floor(start * fs / settings.fs)),
            min(n_orig, int(np.ceil((start + settings.n_samples) * fs / settings.fs))))


def standardize_record(signal: np.ndarray, fs: float, lead_names: list[str], unit: str,
                       settings: Settings) -> tuple[np.ndarray, dict]:
    """One raw record -> ([12, n_samples] float32 in mV at ``settings.fs``, QC values); with
    ``settings.window_stride_s``, every window instead: [windows, 12, n_samples], their starts in
    seconds in the QC values (``window_starts_s``).

    Raises ``RejectRecord`` with the reason when the record fails a check. The QC values say which
    leads were recorded, derived and zeroed (``leads_present``, ``leads_derived``, ``leads_zeroed``).
    """
    qc = settings.qc
    x, provenance = select_leads(signal, lead_names, settings.leads, settings.zero_missing_leads)
    real = np.array([lead not in provenance["zeroed"] for lead in settings.leads])
    try:
        x = x * np.float32(unit_to_mv(unit) * settings.amplitude_scale)
    except ValueError as exc:
        raise RejectRecord(str(exc)) from None
    if settings.expected_fs is not None and abs(fs - settings.expected_fs) > 1e-6:
        raise RejectRecord(f"sampling rate {fs:g} Hz in the header, but this source is recorded "
                           f"at {settings.expected_fs:g} Hz")
    n_orig = x.shape[-1]
    duration = n_orig / fs
    min_seconds = settings.min_seconds_when_padding if settings.pad_short else settings.seconds
    if duration < min_seconds - 0.5 / fs:
        raise RejectRecord(f"too short: {duration:.2f} s < {min_seconds:g} s")
    failed = []
    start, stop = used_span(n_orig, fs, settings)
    nan_anywhere = np.isnan(x)
    nan_mask = nan_anywhere[:, start:stop]
    n_nan = int(nan_mask.sum())
    if n_nan:
        run = longest_run(nan_mask)
        if run > qc.max_nan_run_s * fs:
            failed.append(f"NaN run of {run} samples ({run / fs:.2f} s) > {qc.max_nan_run_s:g} s")
    if nan_anywhere.any():
        x = interpolate_nans(x, settings.leads)
    used = x[:, start:stop]
    std = used.std(axis=-1)
    flat = [settings.leads[i] for i in np.flatnonzero((std < qc.flat_std_mv) & real)]
    if flat:
        failed.append(f"flat lead(s) (std < {qc.flat_std_mv:g} mV): {', '.join(flat)}")
    sat = saturation_fraction(used[real])
    if sat > qc.max_saturation_fraction:
        failed.append(f"saturated: {sat:.1%} of a lead's samples at its extreme value")
    y = resample(x, fs, settings.fs)
    starts = None
    if settings.window_stride_s is not None and y.shape[-1] > settings.n_samples:
        starts = window_starts(y.shape[-1], settings.n_samples, int(round(settings.window_stride_s * settings.fs)))
        n_padded = 0
    else:
        y, n_padded = crop_or_pad(y, settings.n_samples, settings.pad_short)
    lead_amp = lead_peak_to_peak_mv(y)
    amp = float(np.median(lead_amp[real]))
    lo, hi = qc.amplitude_range_mv
    if not lo <= amp <= hi:
        failed.append(f"implausible amplitude: median peak-to-peak {amp:.3g} mV outside "
                      f"[{lo:g}, {hi:g}] mV (wrong unit?)")
    values = {"qc_nan_samples": n_nan, "qc_padded_samples": n_padded, "qc_saturation": sat,
              "qc_peak_to_peak_mv": amp, "qc_limb_residual": np.nan,
              "lead_peak_to_peak_mv": lead_amp.astype(np.float32),
              **{f"leads_{kind}": ",".join(names) for kind, names in provenance.items()}}
    if settings.leads == CANONICAL_LEADS and real[:6].all():
        residuals = limb_lead_residuals(y)
        worst = max(residuals, key=residuals.get)
        values["qc_limb_residual"] = residuals[worst]
        if residuals[worst] > qc.max_limb_residual:
            failed.append(f"limb leads inconsistent: {worst} departs from its Einthoven/Goldberger "
                          f"definition by {residuals[worst]:.2f} (swapped leads?)")
    if failed and not settings.keep_flagged:
        raise RejectRecord("; ".join(failed))
    values["qc_failed"] = "; ".join(failed)
    if starts is not None:
        values["window_starts_s"] = [start / settings.fs for start in starts]
        y = np.stack([y[:, start : start + settings.n_samples] for start in starts])
    return np.ascontiguousarray(y, dtype=np.float32), values
