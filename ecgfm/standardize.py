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
 7. anti-aliased polyphase resampling to the target rate (``scipy.signal.resample_poly``);
 8. centre crop to the target length, or zero padding when the config allows (flagged); or, for
    inference on longer records, every window of the target length at a stride;
 9. amplitude plausibility (unit errors) and limb-lead consistency (swapped leads).

The quality checks (5, 6, 9) judge the samples that are used: the centre window of a longer
record (``used_span``), so that a monitor record with a null segment or a lead-off hour elsewhere
is judged by its centre 10 s; with sliding windows each window by its own samples
(``standardize_windows``): a window that fails is left out with its reason, and the record is
rejected only when every window fails.

The QC values returned include ``lead_peak_to_peak_mv`` (one value per lead), which
``ecgfm.corpus`` summarizes per source instead of storing per record.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

import numpy as np

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
    from scipy.signal import firwin      # here, not at the top: scipy.signal takes 1-2 s to import,
                                         # and most processes that import this module never resample
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
    from scipy.signal import resample_poly

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


def original_span(start: int, n_orig: int, fs: float, settings: Settings) -> tuple[int, int]:
    """The original samples [start, stop) behind ``settings.n_samples`` output samples from
    output sample ``start`` on (the edges rounded outwards)."""
    return (int(np.floor(start * fs / settings.fs)),
            min(n_orig, int(np.ceil((start + settings.n_samples) * fs / settings.fs))))


def resampled_length(n_orig: int, fs: float, settings: Settings) -> int:
    """How many samples ``n_orig`` samples at ``fs`` become at the target rate."""
    return int(np.ceil(n_orig * settings.fs / fs))


def used_span(n_orig: int, fs: float, settings: Settings) -> tuple[int, int]:
    """The original samples [start, stop) that a centre-cropped output is made of: the centre of
    a record longer than the target duration, else all of them (shorter records)."""
    n_out = resampled_length(n_orig, fs, settings)
    if n_out <= settings.n_samples:
        return 0, n_orig
    return original_span((n_out - settings.n_samples) // 2, n_orig, fs, settings)


def sample_checks(x: np.ndarray, nan_mask: np.ndarray, real: np.ndarray, fs: float,
                  settings: Settings) -> tuple[list[str], int, float]:
    """Quality checks on the original samples that are used ([leads, n], NaNs interpolated, their
    mask beside): NaN runs, flat leads, saturation. Returns (failures, NaN samples, saturation)."""
    qc, failed = settings.qc, []
    n_nan = int(nan_mask.sum())
    if n_nan:
        run = longest_run(nan_mask)
        if run > qc.max_nan_run_s * fs:
            failed.append(f"NaN run of {run} samples ({run / fs:.2f} s) > {qc.max_nan_run_s:g} s")
    std = x.std(axis=-1)
    flat = [settings.leads[i] for i in np.flatnonzero((std < qc.flat_std_mv) & real)]
    if flat:
        failed.append(f"flat lead(s) (std < {qc.flat_std_mv:g} mV): {', '.join(flat)}")
    sat = saturation_fraction(x[real])
    if sat > qc.max_saturation_fraction:
        failed.append(f"saturated: {sat:.1%} of a lead's samples at its extreme value")
    return failed, n_nan, sat


def output_checks(y: np.ndarray, real: np.ndarray, settings: Settings
                  ) -> tuple[list[str], np.ndarray, float, float]:
    """Quality checks on one standardized output [leads, n_samples]: amplitude plausibility and
    limb-lead consistency. Returns (failures, peak-to-peak per lead, median of those over the
    real leads, worst limb residual or NaN)."""
    qc, failed = settings.qc, []
    lead_amp = lead_peak_to_peak_mv(y)
    amp = float(np.median(lead_amp[real]))
    lo, hi = qc.amplitude_range_mv
    if not lo <= amp <= hi:
        failed.append(f"implausible amplitude: median peak-to-peak {amp:.3g} mV outside "
                      f"[{lo:g}, {hi:g}] mV (wrong unit?)")
    residual = np.nan
    if settings.leads == CANONICAL_LEADS and real[:6].all():
        residuals = limb_lead_residuals(y)
        worst = max(residuals, key=residuals.get)
        residual = residuals[worst]
        if residuals[worst] > qc.max_limb_residual:
            failed.append(f"limb leads inconsistent: {worst} departs from its Einthoven/Goldberger "
                          f"definition by {residuals[worst]:.2f} (swapped leads?)")
    return failed, lead_amp, amp, residual


def describe_window_failures(failures: list[tuple[int, float, str]]) -> str:
    """One text for the windows that failed a check ((window index, start s, reason) each):
    consecutive windows that failed the same checks are one entry, with the first one's figures
    where theirs differ; entries are separated by `` | ``."""
    groups = []          # [first start, last index, last start, reasons, count]
    for index, start, reason in failures:
        last = groups[-1] if groups else None
        if last and last[1] == index - 1 and _check_kinds(last[3][0]) == _check_kinds(reason):
            last[1:3] = [index, start]
            last[3].append(reason)
        else:
            groups.append([start, index, start, [reason]])
    parts = []
    for first, _, last, reasons in groups:
        if len(reasons) == 1:
            parts.append(f"window at {first:g} s: {reasons[0]}")
        else:
            figures = "" if len(set(reasons)) == 1 else f" (figures of the window at {first:g} s)"
            parts.append(f"{len(reasons)} windows at {first:g}-{last:g} s: {reasons[0]}{figures}")
    return " | ".join(parts)


def _check_kinds(reason: str) -> str:
    """A reason without its figures: which checks failed, on which leads (V1 stays V1)."""
    return re.sub(r"(?<![A-Za-z])\d+(\.\d+)?", "#", reason)


def standardize_record(signal: np.ndarray, fs: float, lead_names: list[str], unit: str,
                       settings: Settings) -> tuple[np.ndarray, dict]:
    """One raw record -> ([12, n_samples] float32 in mV at ``settings.fs``, QC values); with
    ``settings.window_stride_s`` and a record longer than one window, its windows instead
    (``standardize_windows``).

    Raises ``RejectRecord`` with the reason when the record fails a check. The QC values say which
    leads were recorded, derived and zeroed (``leads_present``, ``leads_derived``, ``leads_zeroed``).
    """
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
    nan_mask = np.isnan(x)
    if nan_mask.any():
        x = interpolate_nans(x, settings.leads)
    lead_columns = {f"leads_{kind}": ",".join(names) for kind, names in provenance.items()}
    if settings.window_stride_s is not None and resampled_length(n_orig, fs, settings) > settings.n_samples:
        return standardize_windows(x, nan_mask, real, fs, settings, lead_columns)
    start, stop = used_span(n_orig, fs, settings)
    failed, n_nan, sat = sample_checks(x[:, start:stop], nan_mask[:, start:stop], real, fs, settings)
    y, n_padded = crop_or_pad(resample(x, fs, settings.fs), settings.n_samples, settings.pad_short)
    output_failed, lead_amp, amp, residual = output_checks(y, real, settings)
    failed += output_failed
    if failed and not settings.keep_flagged:
        raise RejectRecord("; ".join(failed))
    values = {"qc_nan_samples": n_nan, "qc_padded_samples": n_padded, "qc_saturation": sat,
              "qc_peak_to_peak_mv": amp, "qc_limb_residual": residual,
              "lead_peak_to_peak_mv": lead_amp.astype(np.float32), **lead_columns,
              "qc_failed": "; ".join(failed)}
    return np.ascontiguousarray(y, dtype=np.float32), values


def standardize_windows(x: np.ndarray, nan_mask: np.ndarray, real: np.ndarray, fs: float,
                        settings: Settings, lead_columns: dict) -> tuple[np.ndarray, dict]:
    """Every window of a record longer than one (``window_starts`` at ``settings.window_stride_s``),
    each judged by the quality checks on its own samples ([leads, n] in mV, NaNs interpolated).

    A window that fails is left out, with its reason in ``windows_left_out`` ((start s, reason)
    each) and ``qc_windows_failed`` (one text); the record is rejected only when every window
    fails. With ``keep_flagged`` failing windows are kept and their reasons go to ``qc_failed``.
    Returns ([kept windows, leads, n_samples], QC values) with the kept windows' starts in seconds
    (``window_starts_s``); the record's QC values are over its kept windows (worst saturation and
    limb residual, NaN samples under them, peak-to-peak per lead their median)."""
    n_orig = x.shape[-1]
    y = resample(x, fs, settings.fs)
    starts = window_starts(y.shape[-1], settings.n_samples, int(round(settings.window_stride_s * settings.fs)))
    failures, kept, checks = [], [], []
    used = np.zeros(n_orig, dtype=bool)
    for k, start in enumerate(starts):
        a, b = original_span(start, n_orig, fs, settings)
        failed, _, sat = sample_checks(x[:, a:b], nan_mask[:, a:b], real, fs, settings)
        output_failed, lead_amp, _, residual = output_checks(y[:, start:start + settings.n_samples], real, settings)
        failed += output_failed
        if failed:
            failures.append((k, start / settings.fs, "; ".join(failed)))
        if not failed or settings.keep_flagged:
            kept.append(start)
            checks.append((sat, lead_amp, residual))
            used[a:b] = True
    summary = describe_window_failures(failures)
    if not kept:
        raise RejectRecord(f"every window fails a quality check: {summary}")
    lead_amp = np.median(np.stack([c[1] for c in checks]), axis=0)
    residuals = np.array([c[2] for c in checks])        # NaN where output_checks had no limb leads to judge
    values = {"qc_nan_samples": int(nan_mask[:, used].sum()), "qc_padded_samples": 0,
              "qc_saturation": max(c[0] for c in checks),
              "qc_peak_to_peak_mv": float(np.median(lead_amp[real])),
              "qc_limb_residual": float(np.nanmax(residuals)) if np.isfinite(residuals).any() else np.nan,
              "lead_peak_to_peak_mv": lead_amp.astype(np.float32), **lead_columns,
              "qc_failed": summary if settings.keep_flagged else "",
              "qc_windows_failed": "" if settings.keep_flagged else summary,
              "windows_left_out": [] if settings.keep_flagged else [(start, reason) for _, start, reason in failures],
              "window_starts_s": [start / settings.fs for start in kept]}
    windows = np.stack([y[:, start:start + settings.n_samples] for start in kept])
    return np.ascontiguousarray(windows, dtype=np.float32), values
