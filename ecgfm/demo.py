"""A synthetic multi-source ECG corpus written in the sources' real on-disk formats.

The demo profile and the tests use it so that they run the very readers real data uses, with no
network. The ECGs are meant to be learnable, not realistic in every detail:

* the heart is a moving dipole ``d(t)`` in 3-D (x left, y inferior, z anterior): each beat is a sum
  of Gaussian waves (P, septal Q, R, S, T), each with its own direction;
* electrodes (RA, LA, LL, V1-V6) see ``lead_vector . d(t)`` plus their own noise (baseline wander,
  mains hum, muscle), and the 12 leads are formed from electrode potentials exactly as a device
  forms them (I = LA - RA, aVR = RA - (LA + LL)/2, V_i against Wilson's terminal), so Einthoven's
  and Goldberger's laws hold up to quantisation;
* each patient has traits (heart rate, electrical axis, amplitudes, widths) shared by all of
  their ECGs, which vary only a little around them;
* conditions follow age and sex, and change morphology by a graded severity (subtle to marked):
  MI = pathological Q waves and T waves turning away from an anterior, inferior or lateral scar
  (ST elevation when recent), STTC = ST depression with T flattening to inversion, CD = a wider
  QRS with a terminal R' (RBBB, LBBB) or left axis deviation (LAFB), HYP = higher QRS voltage,
  with ST-T strain when marked;
* normal variants and nuisances overlap them: body habitus scales every wave, normal T waves range
  from low to tall (some flat), young men show early repolarization, electrode placement and
  noise vary; and the recorded diagnoses carry annotation noise (missed and spurious labels).

Everything is seeded: the same arguments write the same bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import resample_poly

from .wfdb import write_record

TASKS = ("MI", "STTC", "CD", "HYP")
DEFAULT_PREVALENCE = {"MI": 0.25, "STTC": 0.24, "CD": 0.22, "HYP": 0.12}

# Electrode lead vectors (x left, y inferior, z anterior); Wilson's terminal is their limb mean.
_ELECTRODES = {
    "RA": (-0.5, -0.29, 0.0), "LA": (0.5, -0.29, 0.0), "LL": (0.0, 0.58, 0.0),
    "V1": (-0.3, 0.05, 1.1), "V2": (0.0, 0.05, 1.2), "V3": (0.35, 0.1, 1.0),
    "V4": (0.7, 0.15, 0.75), "V5": (1.0, 0.15, 0.35), "V6": (1.1, 0.15, 0.0),
}
_PTBXL_LEAD_NAMES = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
_CODE_LEAD_NAMES = ["DI", "DII", "DIII", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
_STANDARD_NAMES = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


@dataclass
class Patient:
    """One patient's traits, shared by all of their ECGs (each ECG varies a little around them).

    ``labels`` are the true conditions; ``severity`` grades each present one (0.25-1: from subtle
    to marked); the recorded diagnoses (``_scp_codes``) add annotation noise on top."""
    patient_id: int
    age: int
    male: bool
    heart_rate: float
    rotation: np.ndarray        # 3x3 rotation of the electrical axis
    amplitude: float            # body habitus and lead-to-heart distance: scales every wave
    width: float                # QRS duration factor (normal spread)
    t_amplitude: float          # normal T waves range from low to tall
    pr: float                   # P-wave onset before R (s)
    labels: dict                # task -> bool
    severity: dict              # task -> 0..1
    mi_territory: str
    cd_kind: str
    early_repolarization: bool  # a normal variant that mimics ST elevation
    flat_t: bool                # non-specific T flattening in a normal ECG
    noise: float                # how noisy this patient's recordings tend to be


def _rotation(rng, max_deg):
    angles = np.deg2rad(rng.uniform(-max_deg, max_deg, size=3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def make_patients(n: int, rng: np.random.Generator, prevalence: dict | None = None) -> list[Patient]:
    """Patients whose conditions follow age and sex as in a clinical population (older: more MI,
    CD and HYP; men: more MI and HYP), at ``prevalence`` on average."""
    prevalence = {**DEFAULT_PREVALENCE, **(prevalence or {})}
    patients = []
    for pid in range(n):
        age = int(np.clip(rng.normal(60, 16), 18, 95))
        male = bool(rng.random() < 0.52)
        risk = {"MI": 1.0 + 1.2 * (age - 60) / 30 + (0.35 if male else -0.35),
                "STTC": 1.0 + 0.8 * (age - 60) / 30, "CD": 1.0 + 1.0 * (age - 60) / 30,
                "HYP": 1.0 + 1.0 * (age - 60) / 30 + (0.25 if male else -0.25)}
        labels = {t: bool(rng.random() < np.clip(prevalence[t] * max(risk[t], 0.15), 0, 0.95)) for t in TASKS}
        amplitude = float(np.exp(rng.normal(0.0, 0.22))) * (1.08 if male else 0.94) * (1.1 - 0.003 * (age - 18))
        patients.append(Patient(
            patient_id=10000 + pid, age=age, male=male, heart_rate=float(np.clip(rng.normal(72, 12), 45, 115)),
            rotation=_rotation(rng, 30), amplitude=amplitude, width=float(np.clip(rng.normal(1.0, 0.08), 0.8, 1.25)),
            t_amplitude=float(rng.uniform(0.18, 0.5)), pr=float(rng.uniform(0.14, 0.2)), labels=labels,
            severity={t: float(rng.uniform(0.25, 1.0)) if labels[t] else 0.0 for t in TASKS},
            mi_territory=str(rng.choice(["anterior", "inferior", "lateral"])),
            cd_kind=str(rng.choice(["RBBB", "LBBB", "LAFB"], p=[0.45, 0.25, 0.3])),
            early_repolarization=bool(male and age < 45 and rng.random() < 0.4),
            flat_t=bool(rng.random() < 0.08), noise=float(np.exp(rng.normal(0, 0.5)))))
    return patients


_TERRITORY = {"anterior": (0.15, -0.1, 1.0), "inferior": (0.0, 1.0, 0.1), "lateral": (1.0, -0.2, 0.3)}


def _waves(p: Patient, rng) -> tuple[list[tuple], np.ndarray | None]:
    """(centre s relative to R, sigma s, amplitude mV, unit direction) of each wave of one ECG of
    patient p, and the ST-segment shift vector (or None)."""
    w, a = p.width * rng.uniform(0.97, 1.03), p.amplitude * rng.uniform(0.93, 1.07)
    sev = p.severity
    qrs = 1.0
    r_amp, r_dir = 1.3 * a, _unit((0.6, 0.75, -0.3))
    s_amp = 0.35 * a
    t_dir, t_amp = _unit((0.6, 0.6, 0.15)), p.t_amplitude * a * (0.45 if p.flat_t else 1.0)
    waves = [(-p.pr, 0.025 * w, 0.15 * a, _unit((0.5, 0.8, 0.2))),
             (-0.028, 0.009 * w, 0.12 * a, _unit((-0.6, 0.2, 0.75)))]
    if p.labels["CD"]:
        if p.cd_kind == "LAFB":                          # left axis deviation, QRS barely wider
            r_dir, qrs = _unit((0.8, -0.45, -0.3)), 1.0 + 0.2 * sev["CD"]
        else:
            qrs = 1.0 + 0.9 * sev["CD"]
            late = _unit((-0.5, 0.0, 0.85)) if p.cd_kind == "RBBB" else _unit((0.9, 0.1, -0.45))
            waves.append((0.05 + 0.03 * sev["CD"], 0.016 * w, 0.5 * a * sev["CD"], late))
    st = np.zeros(3)
    if p.labels["HYP"]:
        r_amp *= 1.0 + 0.8 * sev["HYP"]
        s_amp *= 1.0 + 0.9 * sev["HYP"]
        r_dir = _unit(r_dir + np.array([0.2, -0.2, -0.25]) * sev["HYP"])
        if sev["HYP"] > 0.7:                              # strain: ST-T opposite to the QRS
            st -= 0.06 * a * r_dir
            t_amp *= 0.4
    waves += [(0.0, 0.012 * w * qrs, r_amp, r_dir),
              (0.032 * qrs, 0.012 * w * qrs, s_amp, _unit((-0.2, -0.5, -0.85)))]
    if p.labels["MI"]:
        territory = _unit(_TERRITORY[p.mi_territory])
        waves.append((-0.012, 0.018 * w, 0.55 * a * sev["MI"], -territory))   # pathological Q wave
        st += 0.10 * a * sev["MI"] * territory * (rng.random() < 0.4)         # ST elevation when recent
        t_dir = _unit(t_dir - 0.9 * sev["MI"] * territory)                    # T turning away from the scar
    if p.labels["STTC"]:
        t_amp *= 1.0 - 1.5 * sev["STTC"]                                       # flattening to inversion
        st -= 0.10 * a * sev["STTC"] * r_dir                                   # ST depression
    if p.early_repolarization:
        st += 0.05 * a * _unit((0.3, 0.5, 0.6))
    waves.append((0.26 + 0.02 * w, 0.055 * w, t_amp, t_dir))
    return waves, (st if np.any(st) else None)


def _bumps(t: np.ndarray, beats: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    """Sum over beats of a Gaussian at ``beat + centre`` ([n]), each evaluated within 8 sigma of
    its peak (beyond, it is below 1e-13 of its height)."""
    fs = 1.0 / (t[1] - t[0])
    half = int(np.ceil(8 * sigma * fs))
    peaks = np.round((beats + centre - t[0]) * fs).astype(int)
    idx = peaks[:, None] + np.arange(-half, half + 1)[None, :]                 # [beats, window]
    inside = (idx >= 0) & (idx < len(t))
    values = np.exp(-0.5 * ((t[np.clip(idx, 0, len(t) - 1)] - (beats[:, None] + centre)) / sigma) ** 2)
    out = np.zeros(len(t))
    np.add.at(out, idx[inside], values[inside])
    return out


def synth_ecg(p: Patient, fs: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One 12-lead ECG [n, 12] in mV (canonical lead order) for patient ``p``."""
    n = int(round(fs * seconds))
    t = np.arange(n) / fs
    rr = 60.0 / (p.heart_rate * rng.uniform(0.93, 1.07))
    beats = np.arange(rng.uniform(0.2, 0.2 + rr), seconds + 0.4, rr)
    beats = beats + rng.normal(0, 0.02 * rr, size=beats.size)   # heart-rate variability
    waves, st = _waves(p, rng)
    dipole = np.zeros((n, 3))
    for centre, sigma, amp, direction in waves:
        dipole += np.outer(_bumps(t, beats, centre, sigma) * amp, p.rotation @ direction)
    if st is not None:   # a smooth plateau from the end of QRS to the T wave
        x = (t[:, None] - beats[None, :] - 0.04) / 0.16
        plateau = np.where((x > 0) & (x < 1), np.sin(np.pi * np.clip(x, 0, 1)) ** 0.5, 0.0).sum(axis=1)
        dipole += np.outer(plateau, p.rotation @ st)
    mains = 50.0 if rng.random() < 0.5 else 60.0
    noise = p.noise * rng.uniform(0.6, 1.6)
    potentials = {}
    for name, vec in _ELECTRODES.items():
        vec = np.asarray(vec) + rng.normal(0, 0.04, 3)            # electrode placement varies
        wander = sum(rng.uniform(0.01, 0.1) * noise * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t
                                                              + rng.uniform(0, 2 * np.pi)) for _ in range(2))
        hum = rng.uniform(0.001, 0.01) * np.sin(2 * np.pi * mains * t + rng.uniform(0, 2 * np.pi))
        muscle = rng.normal(0, rng.uniform(0.003, 0.012) * noise, size=n)
        potentials[name] = dipole @ vec + wander + hum + muscle
    ra, la, ll = potentials["RA"], potentials["LA"], potentials["LL"]
    wct = (ra + la + ll) / 3.0
    leads = [la - ra, ll - ra, ll - la, ra - (la + ll) / 2, la - (ra + ll) / 2, ll - (ra + la) / 2]
    leads += [potentials[f"V{i}"] - wct for i in range(1, 7)]
    return np.column_stack(leads).astype(np.float32)


def _ecg_plan(patients, max_per_patient, rng):
    """(patient, ecg index) pairs: some patients have several ECGs (for patient-level contrast)."""
    plan = []
    for p in patients:
        count = 1 + int(rng.integers(0, max_per_patient)) if max_per_patient > 1 else 1
        plan += [(p, k) for k in range(count)]
    return plan


def _to_adc(signal_mv: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(np.round(signal_mv * gain), -32767, 32767).astype(np.int16)


# --- writers, one per real format -----------------------------------------------------------

# code -> (description, diagnostic, form, rhythm, diagnostic_class, diagnostic_subclass), as
# PTB-XL's scp_statements.csv gives them for these codes
_SCP = {
    "NORM": ("normal ECG", 1, 0, 0, "NORM", "NORM"),
    "IMI": ("inferior myocardial infarction", 1, 0, 0, "MI", "IMI"),
    "AMI": ("anterior myocardial infarction", 1, 0, 0, "MI", "AMI"),
    "LMI": ("lateral myocardial infarction", 1, 0, 0, "MI", "LMI"),
    "NDT": ("non-diagnostic T abnormalities", 1, 1, 0, "STTC", "STTC"),
    "ISC_": ("non-specific ischemic", 1, 0, 0, "STTC", "ISC_"),
    "CRBBB": ("complete right bundle branch block", 1, 0, 0, "CD", "CRBBB"),
    "CLBBB": ("complete left bundle branch block", 1, 0, 0, "CD", "CLBBB"),
    "LAFB": ("left anterior fascicular block", 1, 0, 0, "CD", "LAFB/LPFB"),
    "LVH": ("left ventricular hypertrophy", 1, 0, 0, "HYP", "LVH"),
    "QWAVE": ("Q waves present", 0, 1, 0, None, None),
    "INVT": ("inverted T-waves", 0, 1, 0, None, None),
    "LOWT": ("low amplitude T-waves", 0, 1, 0, None, None),
    "HVOLT": ("high QRS voltage", 0, 1, 0, None, None),
    "SR": ("sinus rhythm", 0, 0, 1, None, None),
    "SBRAD": ("sinus bradycardia", 0, 0, 1, None, None),
    "STACH": ("sinus tachycardia", 0, 0, 1, None, None),
}
_CODE_OF = {("MI", "anterior"): "AMI", ("MI", "inferior"): "IMI", ("MI", "lateral"): "LMI",
            ("CD", "RBBB"): "CRBBB", ("CD", "LBBB"): "CLBBB", ("CD", "LAFB"): "LAFB"}
MISSED_LABEL = 0.07         # share of true conditions the annotating cardiologist did not record
SPURIOUS_LABEL = 0.02       # share of absent conditions recorded anyway (per task)
BRADYCARDIA_BPM, TACHYCARDIA_BPM = 60.0, 100.0      # sinus rates below / above: SBRAD / STACH


def _form_and_rhythm(p: Patient, codes: dict) -> dict:
    """The form and rhythm statements that follow from what ``_waves`` draws (no random numbers
    of their own, so the waveforms stay those of the seed): pathological Q waves of a marked MI,
    the T wave of an ST/T change turned over (inverted) or flattened (low), the voltage of marked
    hypertrophy, and the sinus rhythm by the patient's heart rate."""
    out = {}
    if any(_SCP[c][4] == "MI" for c in codes) and p.severity["MI"] >= 0.5:
        out["QWAVE"] = 100.0
    if {"NDT", "ISC_"} & set(codes):
        out["INVT" if 1.0 - 1.5 * p.severity["STTC"] < 0 else "LOWT"] = 100.0
    if "LVH" in codes and p.severity["HYP"] > 0.7:
        out["HVOLT"] = 100.0
    rhythm = ("SBRAD" if p.heart_rate < BRADYCARDIA_BPM else "STACH" if p.heart_rate > TACHYCARDIA_BPM else "SR")
    out[rhythm] = 0.0
    return out


def _scp_codes(p: Patient, rng) -> dict:
    """The recorded diagnoses of one ECG: the patient's conditions, each missed now and then, and
    now and then one recorded that is not there (annotation noise, as in real databases), with
    the form and rhythm statements that go with them."""
    codes = {}
    for task in TASKS:
        recorded = rng.random() >= MISSED_LABEL if p.labels[task] else rng.random() < SPURIOUS_LABEL
        if not recorded:
            continue
        if task == "MI":
            codes[_CODE_OF["MI", p.mi_territory]] = float(rng.choice([50.0, 100.0]))
        elif task == "STTC":
            codes[str(rng.choice(["NDT", "ISC_"]))] = 100.0
        elif task == "CD":
            codes[_CODE_OF["CD", p.cd_kind]] = 100.0
        else:
            codes["LVH"] = float(rng.choice([0.0, 50.0, 100.0]))
    if not codes:
        codes["NORM"] = 100.0
    return {**codes, **_form_and_rhythm(p, codes)}


def write_ptbxl(dest, n_patients, seed, fs=500, max_ecgs_per_patient=3, prevalence=None,
                missing_waveforms=2) -> dict:
    """PTB-XL layout: ptbxl_database.csv, scp_statements.csv, records500/ and records100/."""
    dest = Path(dest)
    rng = np.random.default_rng(seed)
    patients = make_patients(n_patients, rng, prevalence)
    folds = {p.patient_id: int(rng.integers(1, 11)) for p in patients}
    rows = []
    for ecg_id, (p, _) in enumerate(_ecg_plan(patients, max_ecgs_per_patient, rng), start=1):
        folder = f"{(ecg_id // 1000) * 1000:05d}"
        hr, lr = f"records500/{folder}/{ecg_id:05d}_hr", f"records100/{folder}/{ecg_id:05d}_lr"
        rows.append({"ecg_id": ecg_id, "patient_id": float(p.patient_id), "age": float(p.age),
                     "sex": 0 if p.male else 1, "scp_codes": str(_scp_codes(p, rng)),
                     "strat_fold": folds[p.patient_id], "filename_lr": lr, "filename_hr": hr})
        ecg = synth_ecg(p, fs, 10.0, rng)
        write_record(dest / Path(hr).parent, Path(hr).name, _to_adc(ecg, 1000), fs, _PTBXL_LEAD_NAMES)
        low = resample_poly(ecg, 100, int(fs), axis=0)
        write_record(dest / Path(lr).parent, Path(lr).name, _to_adc(low, 1000), 100, _PTBXL_LEAD_NAMES)
    # metadata rows whose waveform is absent, as in the real database (records removed in 1.0.3)
    for k in range(missing_waveforms):
        ecg_id = len(rows) + 1
        p = patients[k % len(patients)]
        rows.append({"ecg_id": ecg_id, "patient_id": float(p.patient_id), "age": float(p.age),
                     "sex": 0 if p.male else 1, "scp_codes": str({"NORM": 100.0}),
                     "strat_fold": folds[p.patient_id],
                     "filename_lr": f"records100/00000/{ecg_id:05d}_lr",
                     "filename_hr": f"records500/00000/{ecg_id:05d}_hr"})
    pd.DataFrame(rows).to_csv(dest / "ptbxl_database.csv", index=False)
    flag = {1: 1.0, 0: np.nan}
    scp = pd.DataFrame([{"": code, "description": d, "diagnostic": flag[diag], "form": flag[form],
                         "rhythm": flag[rhythm], "diagnostic_class": c if c else np.nan,
                         "diagnostic_subclass": sub if sub else np.nan}
                        for code, (d, diag, form, rhythm, c, sub) in _SCP.items()])
    scp.to_csv(dest / "scp_statements.csv", index=False)
    return {"records": len(rows) - missing_waveforms, "metadata_rows": len(rows),
            "patients": n_patients}


def _code_tracing(p: Patient, rng, fs=400, total=4096) -> np.ndarray:
    """One CODE-layout tracing [4096, 12] (mV, float32): 10 s or, one time in five, 7 s recorded at
    ``fs`` and zero-padded on both sides to ``total`` samples."""
    seconds = 10.0 if rng.random() < 0.8 else 7.0
    ecg = synth_ecg(p, fs, seconds, rng)
    pad = total - ecg.shape[0]
    return np.pad(ecg, ((pad // 2, pad - pad // 2), (0, 0))).astype(np.float32)


def write_code15(dest, n_patients, seed, max_ecgs_per_patient=2, prevalence=None, missing_waveforms=1,
                 fs=400):
    """CODE-15% layout: exams.csv + exams_part0.hdf5 (``tracings`` N x 4096 x 12 at 400 Hz and
    ``exam_id``, rows shuffled against the CSV, and the all-zero padding row with exam_id 0)."""
    import h5py
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    patients = make_patients(n_patients, rng, prevalence)
    plan = _ecg_plan(patients, max_ecgs_per_patient, rng)
    tracings, rows = [], []
    for k, (p, _) in enumerate(plan):
        tracings.append(_code_tracing(p, rng, fs))
        rows.append({"exam_id": 100000 + 7 * k, "age": p.age, "is_male": p.male,
                     "nn_predicted_age": round(p.age + rng.normal(0, 5), 1), "1dAVb": False,
                     "RBBB": p.labels["CD"] and p.cd_kind == "RBBB", "LBBB": p.labels["CD"] and p.cd_kind == "LBBB",
                     "SB": p.heart_rate < 60, "AF": False, "ST": p.heart_rate > 100, "patient_id": p.patient_id,
                     "normal_ecg": not any(p.labels.values()), "death": False, "timey": 5.0,
                     "trace_file": "exams_part0.hdf5"})
    order = rng.permutation(len(plan))                    # HDF5 rows are not in CSV order
    kept = order[: len(order) - missing_waveforms]        # CSV rows with no waveform
    ids = np.array([rows[i]["exam_id"] for i in kept] + [0], dtype=np.int64)   # + dummy row
    data = np.stack([tracings[i] for i in kept] + [np.zeros_like(tracings[0])])
    with h5py.File(dest / "exams_part0.hdf5", "w") as f:
        f.create_dataset("tracings", data=data)
        f.create_dataset("exam_id", data=ids)
    pd.DataFrame(rows).to_csv(dest / "exams.csv", index=False)
    return {"records": len(kept), "metadata_rows": len(rows), "patients": n_patients}


def write_samitrop(dest, n_patients, seed, max_ecgs_per_patient=1, prevalence=None, missing_waveforms=0,
                   fs=400):
    """SaMi-Trop layout: exams.csv (exam_id, age, is_male, normal_ecg, death, timey,
    nn_predicted_age) + exams.hdf5 holding only ``tracings`` [N, 4096, 12], row i being CSV row i.
    One exam per patient, as in the real archive; every CSV row has its tracing."""
    import h5py
    if missing_waveforms or max_ecgs_per_patient != 1:
        raise ValueError("SaMi-Trop has one exam per patient and a tracing for every CSV row")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    patients = make_patients(n_patients, rng, prevalence)
    tracings, rows = [], []
    for k, p in enumerate(patients):
        tracings.append(_code_tracing(p, rng, fs))
        rows.append({"exam_id": 200000 + 13 * k, "age": p.age, "is_male": p.male,
                     "normal_ecg": not any(p.labels.values()), "death": bool(p.labels["HYP"]),
                     "timey": round(float(rng.uniform(0.5, 2.5)), 2),
                     "nn_predicted_age": round(p.age + rng.normal(0, 5), 1)})
    with h5py.File(dest / "exams.hdf5", "w") as f:
        f.create_dataset("tracings", data=np.stack(tracings))
    pd.DataFrame(rows).to_csv(dest / "exams.csv", index=False)
    return {"records": len(rows), "metadata_rows": len(rows), "patients": n_patients}


def write_mimic(dest, n_patients, seed, max_ecgs_per_patient=3, prevalence=None, missing_waveforms=1,
                fs=500):
    """MIMIC-IV-ECG layout: record_list.csv + files/pNNNN/pSUBJECT/sSTUDY/STUDY.{hea,dat}, gain 200."""
    dest = Path(dest)
    rng = np.random.default_rng(seed)
    patients = make_patients(n_patients, rng, prevalence)
    rows = []
    for k, (p, _) in enumerate(_ecg_plan(patients, max_ecgs_per_patient, rng)):
        subject, study = 10000000 + p.patient_id, 40000000 + k
        path = f"files/p{str(subject)[:4]}/p{subject}/s{study}/{study}"
        rows.append({"subject_id": subject, "study_id": study, "file_name": study,
                     "ecg_time": "2180-01-01 00:00:00", "path": path})
        if k < missing_waveforms:
            continue
        ecg = synth_ecg(p, fs, 10.0, rng)
        names = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
        order = [_STANDARD_NAMES.index(n) for n in names]   # MIMIC stores aVF before aVL
        write_record(dest / Path(path).parent, str(study), _to_adc(ecg[:, order], 200), fs, names,
                     gain=200.0)
    dest.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(dest / "record_list.csv", index=False)
    return {"records": len(rows) - missing_waveforms, "metadata_rows": len(rows), "patients": n_patients}


IKEM_STORED_LEADS = ("V1", "V2", "V3", "V4", "V5", "V6", "I", "II")
IKEM_SAMPLES = 4096


def ikem_tracing(ecg_mv: np.ndarray, uv_per_count: float = 4.88,
                 stored_leads=IKEM_STORED_LEADS) -> tuple[np.ndarray, int]:
    """An ECG [n, 12] in mV (canonical lead order) as IKEM stores it: the 8 independent leads in
    the order V1-V6, I, II, as int16 counts of ``uv_per_count``; centre-cropped to 4,096 samples when
    longer, end-padded with zeros when shorter. Returns (tracing [4096, 8], real_length)."""
    columns = [_STANDARD_NAMES.index(lead) for lead in stored_leads]
    counts = np.clip(np.round(ecg_mv[:, columns] * 1000.0 / uv_per_count), -32767, 32767).astype(np.int16)
    n = counts.shape[0]
    if n >= IKEM_SAMPLES:
        start = (n - IKEM_SAMPLES) // 2
        return counts[start : start + IKEM_SAMPLES], IKEM_SAMPLES
    return np.pad(counts, ((0, IKEM_SAMPLES - n), (0, 0))), n


def write_ikem_archive(dest, tracings, exams: list[dict], part="exams_part_0.hdf5"):
    """Write IKEM's files: ``part`` with exam_id, hashes (SHA1 of each stored tracing), real_lengths
    and tracings, and exams.csv with the authors' nine columns. ``tracings``: (tracing, real_length)
    pairs in the order of ``exams``."""
    import hashlib

    import h5py
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    data = np.stack([t for t, _ in tracings])
    with h5py.File(dest / part, "w") as f:
        f.create_dataset("exam_id", data=np.array([e["exam_id"] for e in exams], dtype=np.int64))
        f.create_dataset("hashes", data=np.array([hashlib.sha1(t.tobytes()).hexdigest() for t in data],
                                                 dtype="S40"))
        f.create_dataset("real_lengths", data=np.array([n for _, n in tracings], dtype=np.int64))
        f.create_dataset("tracings", data=data, chunks=(1, IKEM_SAMPLES, len(IKEM_STORED_LEADS)))
    columns = ["exam_id", "acquisition_date", "patient_id", "age", "is_male", "weight", "height",
               "ventricular_rate", "atrial_rate"]
    pd.DataFrame(exams, columns=columns).to_csv(dest / "exams.csv", index=False)


def write_ikem(dest, n_patients, seed, max_ecgs_per_patient=3, prevalence=None, missing_waveforms=0,
               fs=500, uv_per_count=4.88):
    """IKEM layout (see ``IKEMReader``): 10 s recorded at ``fs``, centre-cropped to 4,096 samples;
    one recording in ten is shorter (7.5-8 s) and end-padded, its ``real_lengths`` the true length;
    in exams.csv an unknown age or sex is -1, as in the real file (one patient in twenty)."""
    rng = np.random.default_rng(seed)
    patients = make_patients(n_patients, rng, prevalence)
    tracings, exams = [], []
    for k, (p, _) in enumerate(_ecg_plan(patients, max_ecgs_per_patient, rng)):
        seconds = 10.0 if rng.random() < 0.9 else float(rng.uniform(7.5, 8.0))
        tracings.append(ikem_tracing(synth_ecg(p, fs, seconds, rng), uv_per_count))
        unknown = p.patient_id % 20 == 0
        heart_rate = int(round(p.heart_rate))
        exams.append({"exam_id": 500000 + k, "acquisition_date": f"2019-{1 + k % 12:02d}-{1 + k % 28:02d}",
                      "patient_id": p.patient_id, "age": -1 if unknown else p.age,
                      "is_male": -1 if unknown else int(p.male), "weight": int(rng.integers(50, 110)),
                      "height": int(rng.integers(150, 195)), "ventricular_rate": heart_rate,
                      "atrial_rate": heart_rate})
    write_ikem_archive(dest, tracings, exams)
    return {"records": len(exams), "metadata_rows": len(exams), "patients": n_patients}


def ukb_xml(eid: int, ecg_mv: np.ndarray, fs: int, age: int, male: bool, uv_per_count: float = 5.0) -> str:
    """A GE CardioSoft-style resting ECG export as UK Biobank distributes it (field 20205)."""
    counts = np.round(ecg_mv * 1000.0 / uv_per_count).astype(int)
    names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    waves = "\n".join(f'      <WaveformData lead="{name}">{",".join(map(str, counts[:, j]))}</WaveformData>'
                      for j, name in enumerate(names))
    return f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<CardiologyXML>
  <ObservationType>RestECG</ObservationType>
  <PatientInfo>
    <PID>{eid}</PID>
    <Age units="years">{age}</Age>
    <Gender>{'MALE' if male else 'FEMALE'}</Gender>
  </PatientInfo>
  <StripData>
    <NumberOfLeads>12</NumberOfLeads>
    <SampleRate units="Hz">{fs}</SampleRate>
    <ChannelSampleCountTotal>{counts.shape[0]}</ChannelSampleCountTotal>
    <Resolution units="uVperLsb">{uv_per_count:g}</Resolution>
{waves}
  </StripData>
</CardiologyXML>
"""


def write_ukb(dest, n_patients, seed, max_ecgs_per_patient=1, prevalence=None, missing_waveforms=0, fs=500):
    """UK Biobank layout: one ``<eid>_20205_<instance>_0.xml`` per ECG."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    patients = make_patients(n_patients, rng, prevalence)
    count = 0
    for p, k in _ecg_plan(patients, max_ecgs_per_patient, rng):
        eid = 1000000 + p.patient_id
        xml = ukb_xml(eid, synth_ecg(p, fs, 10.0, rng), fs, p.age, p.male)
        (dest / f"{eid}_20205_{2 + k}_0.xml").write_text(xml, encoding="latin-1")
        count += 1
    return {"records": count, "metadata_rows": count, "patients": n_patients}


def write_wfdb_folder(dest, n_patients, seed, max_ecgs_per_patient=1, prevalence=None,
                      missing_waveforms=0, fs=500):
    """A CinC-2021-style folder: ``<name>.hea`` + ``<name>.mat`` with Age/Sex/Dx comments."""
    dest = Path(dest)
    rng = np.random.default_rng(seed)
    patients = make_patients(n_patients, rng, prevalence)
    count = 0
    for p, _ in _ecg_plan(patients, max_ecgs_per_patient, rng):
        write_record(dest, f"S{count:05d}", _to_adc(synth_ecg(p, fs, 10.0, rng), 1000), fs,
                     _STANDARD_NAMES, comments=[f"Age: {p.age}", f"Sex: {'Male' if p.male else 'Female'}",
                                                "Dx: 426783006"], mat=True)
        count += 1
    return {"records": count, "metadata_rows": count, "patients": n_patients}


def write_labelled_dataset(dest, n_patients, seed, max_ecgs_per_patient=2, prevalence=None, fs=500,
                           missing_label_fraction=0.05, unknown_ids=2):
    """A user's own labelled dataset (``ecgfm finetune``): a CinC-2021-style WFDB folder
    (``records/<name>.hea`` + ``.mat``, not PTB-XL's layout) and ``labels.csv`` with
    ``record_id``, ``patient_id`` and four targets: ``MI`` and ``HYP`` (binary, from the patient's
    conditions), ``conduction`` (multi-class: none, RBBB, LBBB, LAFB) and ``age`` (regression).
    A few labels are missing (that record leaves that target only), and ``unknown_ids`` rows name
    records that are not in the folder (listed as not found)."""
    dest = Path(dest)
    rng = np.random.default_rng(seed)
    patients = make_patients(n_patients, rng, prevalence)
    rows = []
    for p, _ in _ecg_plan(patients, max_ecgs_per_patient, rng):
        name = f"E{len(rows):05d}"
        write_record(dest / "records", name, _to_adc(synth_ecg(p, fs, 10.0, rng), 1000), fs, _STANDARD_NAMES,
                     comments=[f"Age: {p.age}", f"Sex: {'Male' if p.male else 'Female'}"], mat=True)
        rows.append({"record_id": name, "patient_id": f"P{p.patient_id}", "MI": int(p.labels["MI"]),
                     "HYP": int(p.labels["HYP"]), "conduction": p.cd_kind if p.labels["CD"] else "none",
                     "age": float(p.age)})
    for k in range(unknown_ids):
        rows.append({"record_id": f"missing/X{k:03d}", "patient_id": f"Q{k}", "MI": 0, "HYP": 0,
                     "conduction": "none", "age": 50.0})
    table = pd.DataFrame(rows)
    for col in ("MI", "conduction", "age"):
        table[col] = table[col].astype(object)
        table.loc[rng.random(len(table)) < missing_label_fraction, col] = None
    table.to_csv(dest / "labels.csv", index=False)
    return {"records": len(rows) - unknown_ids, "metadata_rows": len(table), "patients": n_patients}


WRITERS = {"labelled": write_labelled_dataset, "ptbxl": write_ptbxl, "code15": write_code15, "samitrop": write_samitrop,
           "mimic": write_mimic, "ikem": write_ikem, "ukb": write_ukb, "wfdb": write_wfdb_folder}


def write_demo_source(layout: str, dest, n_patients: int, seed: int, **options) -> dict:
    """Write a demo archive of ``layout`` (a reader name) to ``dest``; returns counts."""
    if layout not in WRITERS:
        raise ValueError(f"no demo writer for {layout!r}; known: {', '.join(WRITERS)}")
    counts = WRITERS[layout](dest, n_patients=n_patients, seed=seed, **options)
    (Path(dest) / "DEMO.json").write_text(json.dumps({"layout": layout, "seed": seed, **counts}) + "\n")
    return counts
