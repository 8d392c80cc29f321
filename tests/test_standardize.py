"""Standardization numerics against hand-computed and analytic cases."""
import numpy as np
import pytest

from ecgfm.leads import CANONICAL_LEADS, derive_limb_leads, limb_lead_residuals, normalize_lead_name
from ecgfm.standardize import (RejectRecord, Settings, crop_or_pad, longest_run, resample,
                               saturation_fraction, standardize_record)


@pytest.mark.parametrize("fs_in", [100, 400, 500])
def test_resampling_keeps_amplitude_and_phase_of_a_sinusoid(fs_in):
    f, phase, seconds = 7.0, 0.6, 10.0
    t_in = np.arange(int(fs_in * seconds)) / fs_in
    y = resample(np.sin(2 * np.pi * f * t_in + phase)[None], fs_in, 250)[0]
    t_out = np.arange(y.size) / 250
    assert y.size == 2500
    core = slice(250, -250)               # away from the edges (the filter assumes zeros outside)
    expected = np.sin(2 * np.pi * f * t_out + phase)
    assert np.max(np.abs(y[core] - expected[core])) < 2e-3     # amplitude and phase within 0.2%
    # phase by projection: < 0.2 degree
    est = np.angle(np.sum(y[core] * np.exp(-1j * 2 * np.pi * f * t_out[core])))
    assert abs(np.degrees(est - (phase - np.pi / 2))) < 0.2


def test_resampling_suppresses_what_would_alias():
    # 500 -> 250 Hz: a 180 Hz tone is above the new Nyquist (125 Hz) and would fold to 70 Hz.
    t = np.arange(5000) / 500
    y = resample(np.sin(2 * np.pi * 180 * t)[None], 500, 250)[0][250:-250]
    assert np.sqrt(np.mean(y**2)) < 0.01 * np.sqrt(0.5)     # at least 40 dB down
    # while a 40 Hz tone (QRS band) passes untouched
    y40 = resample(np.sin(2 * np.pi * 40 * t)[None], 500, 250)[0][250:-250]
    assert abs(np.sqrt(np.mean(y40**2)) - np.sqrt(0.5)) < 0.005


def test_crop_is_centred_and_pad_is_flagged():
    x = np.arange(10)[None]
    y, pad = crop_or_pad(x, 6, allow_pad=False)
    assert y.tolist() == [[2, 3, 4, 5, 6, 7]] and pad == 0
    y, pad = crop_or_pad(np.ones((1, 4)), 7, allow_pad=True)
    assert y.tolist() == [[0, 1, 1, 1, 1, 0, 0]] and pad == 3
    with pytest.raises(RejectRecord, match="too short"):
        crop_or_pad(np.ones((1, 4)), 7, allow_pad=False)


def test_longest_run_and_saturation_by_hand():
    mask = np.array([[0, 1, 1, 0, 1, 1, 1, 0], [1, 0, 0, 0, 0, 0, 0, 1]], bool)
    assert longest_run(mask) == 3
    x = np.array([[0.0, 1, 2, 2, 2, 2, -1, 0]])
    assert saturation_fraction(x) == 4 / 8


def test_lead_names_and_limb_laws():
    assert [normalize_lead_name(n) for n in ["DI", "avr", "AVL", "v6", "III"]] == ["I", "aVR", "aVL", "V6", "III"]
    # monitor names of a limb lead are that lead; a chest lead at an unknown place, or a device's
    # first channel, is none
    assert [normalize_lead_name(n) for n in ["MLII", "ML II", "ECG II", "Lead aVR", "MLIII"]] == [
        "II", "II", "II", "aVR", "III"]
    for name in ("V", "MCL1", "ECG1", "ECG"):
        with pytest.raises(ValueError):
            normalize_lead_name(name)
    rng = np.random.default_rng(0)
    i, ii = rng.normal(size=500), rng.normal(size=500)
    d = derive_limb_leads(i, ii)
    assert np.allclose(d["aVR"] + d["aVL"] + d["aVF"], 0)        # Goldberger
    assert np.allclose(d["III"], ii - i)                         # Einthoven
    ecg = np.vstack([i, ii, d["III"], d["aVR"], d["aVL"], d["aVF"], rng.normal(size=(6, 500))])
    assert max(limb_lead_residuals(ecg).values()) < 1e-9
    swapped = ecg[[0, 1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 11]]
    assert max(limb_lead_residuals(swapped).values()) > 0.5


def _record(fs=500, seconds=10, amplitude=1.0):
    from ecgfm.demo import make_patients, synth_ecg
    rng = np.random.default_rng(1)
    return synth_ecg(make_patients(1, rng)[0], fs, seconds, rng) * amplitude


def test_standardize_record_selects_leads_by_name_and_converts_units():
    ecg = _record()
    order = [6, 0, 11, 1, 3, 2, 4, 5, 7, 8, 9, 10]     # a scrambled storage order
    names = [CANONICAL_LEADS[k].upper() for k in order]
    out, qc = standardize_record(ecg[:, order] * 1000, 500, names, "uV", Settings())
    ref, _ = standardize_record(ecg, 500, list(CANONICAL_LEADS), "mV", Settings())
    assert out.shape == (12, 2500) and out.dtype == np.float32
    assert np.allclose(out, ref, atol=1e-4)
    assert qc["qc_failed"] == "" and qc["qc_limb_residual"] < 0.05


def test_short_nan_runs_are_interpolated_and_counted():
    ecg = _record()
    ecg[1000:1010, 3] = np.nan                    # 10 samples = 20 ms < 40 ms
    out, qc = standardize_record(ecg, 500, list(CANONICAL_LEADS), "mV", Settings())
    assert qc["qc_nan_samples"] == 10 and np.isfinite(out).all()


def test_padding_only_when_allowed():
    ecg = _record(seconds=7)
    with pytest.raises(RejectRecord, match="too short: 7.00 s < 10 s"):
        standardize_record(ecg, 500, list(CANONICAL_LEADS), "mV", Settings())
    out, qc = standardize_record(ecg, 500, list(CANONICAL_LEADS), "mV", Settings(pad_short=True))
    assert qc["qc_padded_samples"] == 750 and np.all(out[:, :375] == 0)


def test_keep_flagged_keeps_quality_failures_with_their_reason():
    ecg = _record()
    ecg[:, 9] = 0.0
    with pytest.raises(RejectRecord, match="flat lead.*V4"):
        standardize_record(ecg, 500, list(CANONICAL_LEADS), "mV", Settings())
    out, qc = standardize_record(ecg, 500, list(CANONICAL_LEADS), "mV", Settings(keep_flagged=True))
    assert "flat lead" in qc["qc_failed"] and out.shape == (12, 2500)


def test_peak_to_peak_by_hand():
    from ecgfm.standardize import peak_to_peak_mv
    x = np.zeros((3, 201))
    x[0, :] = np.linspace(-1, 1, 201)      # ranks 1 and 199 of 201 (tail 0.005) -> -0.99 .. 0.99
    x[1, :] = np.linspace(0, 4, 201)       # 0.02 .. 3.98
    x[2, 100] = 50.0                       # a single spike is ignored: 0
    assert peak_to_peak_mv(x) == pytest.approx(1.98)
