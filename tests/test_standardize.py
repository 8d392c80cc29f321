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


# --- sliding windows: each window judged by its own samples --------------------------------------
LEADS = list(CANONICAL_LEADS)
WINDOWS = Settings(window_stride_s=5.0)


def test_centre_crop_is_the_centre_window_and_ignores_what_lies_outside_it():
    """The centre crop is the window of the same resampled record that starts at the centre
    (30 s: windows at 0, 5, ..., 20 s; the centre 10 s start at 10 s), bit for bit, and a NaN
    stretch outside the centre 10 s neither fails nor counts."""
    ecg = _record(seconds=30)
    centre, qc = standardize_record(ecg, 500, LEADS, "mV", Settings())
    windows, wqc = standardize_record(ecg, 500, LEADS, "mV", WINDOWS)
    assert wqc["window_starts_s"] == [0.0, 5.0, 10.0, 15.0, 20.0] and wqc["windows_left_out"] == []
    np.testing.assert_array_equal(windows[2], centre)
    ecg[: 5 * 500] = np.nan                                         # the first 5 s: outside the centre
    again, qc_nan = standardize_record(ecg, 500, LEADS, "mV", Settings())
    assert qc_nan["qc_failed"] == "" and qc_nan["qc_nan_samples"] == 0
    np.testing.assert_array_equal(again[:, 100:], centre[:, 100:])   # 10.4 s on: beyond the filter's reach
    short, _ = standardize_record(_record(), 500, LEADS, "mV", WINDOWS)   # one window: the centre crop
    np.testing.assert_array_equal(short, standardize_record(_record(), 500, LEADS, "mV", Settings())[0])


def test_a_window_that_fails_is_left_out_with_its_reason():
    """60 s at 500 Hz, windows every 5 s (0, 5, ..., 50 s). NaN for the first 15 s: the windows at
    0 and 5 s hold 10 s of it, the one at 10 s 5 s (2500 samples); the others are used."""
    ecg = _record(seconds=60)
    ecg[: 15 * 500] = np.nan
    windows, qc = standardize_record(ecg, 500, LEADS, "mV", WINDOWS)
    assert qc["window_starts_s"] == [15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0] and windows.shape == (8, 12, 2500)
    assert [start for start, _ in qc["windows_left_out"]] == [0.0, 5.0, 10.0]
    assert qc["windows_left_out"][0][1].startswith("NaN run of 5000 samples (10.00 s) > 0.04 s; flat lead(s)")
    assert qc["windows_left_out"][2][1] == "NaN run of 2500 samples (5.00 s) > 0.04 s"
    assert qc["qc_windows_failed"].endswith(" | window at 10 s: NaN run of 2500 samples (5.00 s) > 0.04 s")
    assert qc["qc_windows_failed"].startswith("2 windows at 0-5 s: NaN run of 5000 samples")
    assert qc["qc_failed"] == "" and qc["qc_nan_samples"] == 0          # the used windows hold none
    kept_all, flagged = standardize_record(ecg, 500, LEADS, "mV", Settings(window_stride_s=5.0, keep_flagged=True))
    np.testing.assert_array_equal(kept_all[3:], windows)               # the same windows, the same samples
    assert flagged["qc_failed"] == qc["qc_windows_failed"] and flagged["windows_left_out"] == []
    centre, centre_qc = standardize_record(ecg, 500, LEADS, "mV", Settings())       # 25-35 s: fine
    assert centre_qc["qc_failed"] == ""

    flat = _record(seconds=60)
    flat[: 15 * 500, 8] = 0.0                    # V3 off for 15 s: the windows at 0 and 5 s are flat
    _, qc = standardize_record(flat, 500, LEADS, "mV", WINDOWS)
    assert qc["windows_left_out"] == [(s, "flat lead(s) (std < 0.005 mV): V3; saturated: 100.0% of a lead's "
                                          "samples at its extreme value") for s in (0.0, 5.0)]
    assert qc["window_starts_s"][0] == 10.0


def test_a_record_whose_every_window_fails_is_rejected_with_the_reasons():
    ecg = _record(seconds=30)
    ecg[:, 7] = 0.0                              # V2 off throughout
    with pytest.raises(RejectRecord) as exc:
        standardize_record(ecg, 500, LEADS, "mV", WINDOWS)
    assert str(exc.value) == ("every window fails a quality check: 5 windows at 0-20 s: flat lead(s) (std < 0.005 mV): "
                              "V2; saturated: 100.0% of a lead's samples at its extreme value")


def test_window_failures_are_described_by_runs_of_the_same_checks():
    from ecgfm.standardize import describe_window_failures
    flat = "flat lead(s) (std < 0.005 mV): V1"
    assert describe_window_failures([(0, 0.0, "NaN run of 5 samples (0.01 s) > 0.04 s"),
                                     (1, 5.0, "NaN run of 9 samples (0.02 s) > 0.04 s"),
                                     (2, 10.0, flat), (3, 15.0, flat),
                                     (4, 20.0, "flat lead(s) (std < 0.005 mV): V2"), (6, 30.0, flat)]) == (
        "2 windows at 0-5 s: NaN run of 5 samples (0.01 s) > 0.04 s (figures of the window at 0 s) | "
        f"2 windows at 10-15 s: {flat} | window at 20 s: flat lead(s) (std < 0.005 mV): V2 | window at 30 s: {flat}")


def test_the_jobs_modules_import_without_scipy_signal():
    """scipy.signal takes 1-2 s to import, paid by every job that imports it; only resampling
    needs it, so the modules of the pretraining, embedding and evaluation jobs leave it out."""
    import subprocess
    import sys
    code = ("import sys, ecgfm.standardize, ecgfm.encoder, ecgfm.finetune, ecgfm.evaluate, ecgfm.pretrain, "
            "ecgfm.adapt; print('scipy.signal' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
