"""Lead names: the canonical 12-lead order, name normalisation, and the limb-lead laws.

Every reader selects leads by *name*, never by position, through `normalize_lead_name`.
Einthoven's and Goldberger's laws tie the six limb leads to two of them (I and II);
`derive_limb_leads` applies them and `limb_lead_residuals` measures how far a record
departs from them (which catches swapped or mislabelled leads). `complete_leads` builds the
leads a model expects from the ones a record has: missing limb leads are derived exactly from any
two recorded ones, and other missing leads are zeros, declared as such.
"""
from __future__ import annotations

import numpy as np

CANONICAL_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

_ALIASES = {
    "DI": "I", "DII": "II", "DIII": "III", "LEADI": "I", "LEADII": "II", "LEADIII": "III",
    "1": "I", "2": "II", "3": "III",
}


# monitor spellings of a limb or standard lead: "MLII" (modified lead II, the MIT-BIH and CinC
# monitor placement), "ECG II", "Lead aVR". Only where the rest is a lead's name, so that "ECG1"
# (a device's first channel) or "V" (a chest lead at an unknown position) stay unmapped.
_PREFIXES = {"ML": ("I", "II", "III"), "ECG": CANONICAL_LEADS, "LEAD": CANONICAL_LEADS}


def normalize_lead_name(name: str) -> str:
    """Map the spellings found in the wild (``DI``, ``AVR``, ``avl``, ``v1``, ``MLII``,
    ``ECG II``) to canonical names.

    Raises ``ValueError`` for a name that is not one of the 12 standard leads.
    """
    key = name.strip().upper().replace(" ", "").replace("_", "").replace("-", "")
    key = _ALIASES.get(key, key)
    for prefix, leads in _PREFIXES.items():
        rest = key[len(prefix):]
        if key.startswith(prefix) and any(rest == lead.upper() for lead in leads):
            key = rest
    for lead in CANONICAL_LEADS:
        if lead.upper() == key:
            return lead
    raise ValueError(f"unknown lead name {name!r}")


def lead_index(names: list[str]) -> dict[str, int]:
    """Canonical lead name -> column index, for the names that are standard leads.

    Duplicate leads are an error: a header that names a lead twice cannot be trusted.
    """
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        try:
            lead = normalize_lead_name(name)
        except ValueError:
            continue
        if lead in index:
            raise ValueError(f"lead {lead} appears twice ({names})")
        index[lead] = i
    return index


LIMB_LEADS = CANONICAL_LEADS[:6]
# each limb lead as a combination of leads I and II (Einthoven: III = II - I; Goldberger: aVR, aVL, aVF)
LIMB_BASIS = {"I": (1.0, 0.0), "II": (0.0, 1.0), "III": (-1.0, 1.0), "aVR": (-0.5, -0.5), "aVL": (1.0, -0.5),
              "aVF": (-0.5, 1.0)}


def derive_limb_leads(lead_i: np.ndarray, lead_ii: np.ndarray) -> dict[str, np.ndarray]:
    """III, aVR, aVL, aVF from I and II (Einthoven and Goldberger, ``LIMB_BASIS``)."""
    return {lead: w_i * lead_i + w_ii * lead_ii for lead, (w_i, w_ii) in LIMB_BASIS.items()
            if lead not in ("I", "II")}


def leads_from(recorded) -> set[str]:
    """The leads a record with only ``recorded`` gives: those, and all six limb leads when two
    limb leads are among them (any two determine the other four)."""
    recorded = set(recorded)
    return recorded | set(LIMB_LEADS) if len(recorded & set(LIMB_LEADS)) >= 2 else recorded


def limb_lead_residuals(ecg: np.ndarray) -> dict[str, float]:
    """Relative departure of III, aVR, aVL, aVF from their definitions in terms of I and II.

    ``ecg`` is [12, n] in canonical order. Each residual is rms(lead - definition) divided by
    the rms of leads I and II together, so it is unitless: ~0 for a consistent record and
    of order 1 when two limb leads are swapped.
    """
    i, ii = ecg[0].astype(np.float64), ecg[1].astype(np.float64)
    i = i - i.mean()
    ii = ii - ii.mean()
    scale = np.sqrt((np.mean(i**2) + np.mean(ii**2)) / 2.0) + 1e-9
    derived = derive_limb_leads(i, ii)
    out = {}
    for name, expected in derived.items():
        lead = ecg[CANONICAL_LEADS.index(name)].astype(np.float64)
        resid = (lead - lead.mean()) - expected
        out[name] = float(np.sqrt(np.mean(resid**2)) / scale)
    return out


def complete_leads(columns: dict, wanted, zero_missing: bool) -> tuple[np.ndarray, dict]:
    """The leads ``wanted`` ([len(wanted), n]) from ``columns`` (canonical lead name -> signal [n]).

    A wanted limb lead the record lacks is derived exactly when two limb leads are recorded (any two
    determine all six; I and II are preferred); any other missing lead is zeros when
    ``zero_missing``, else ``ValueError`` names the missing leads. Returns the array and
    ``{"present": [...], "derived": [...], "zeroed": [...]}`` (lead names, in ``wanted`` order).
    """
    wanted = list(wanted)
    if not columns:
        raise ValueError("no standard lead in the record")
    n = len(next(iter(columns.values())))
    derivable = {}
    if set(LIMB_LEADS) <= leads_from(columns) and any(lead not in columns for lead in wanted if lead in LIMB_LEADS):
        recorded_limb = [lead for lead in LIMB_LEADS if lead in columns]
        a, b = ("I", "II") if {"I", "II"} <= set(recorded_limb) else recorded_limb[:2]
        basis = np.array([LIMB_BASIS[a], LIMB_BASIS[b]])             # [a; b] = basis @ [I; II]
        i, ii = np.linalg.solve(basis, np.stack([columns[a], columns[b]]).astype(np.float64))
        derivable = {lead: signal.astype(np.float32)
                     for lead, signal in {"I": i, "II": ii, **derive_limb_leads(i, ii)}.items()}
    info = {"present": [], "derived": [], "zeroed": []}
    out = np.empty((len(wanted), n), dtype=np.float32)
    for k, lead in enumerate(wanted):
        if lead in columns:
            out[k], kind = columns[lead], "present"
        elif lead in derivable:
            out[k], kind = derivable[lead], "derived"
        elif zero_missing:
            out[k], kind = 0.0, "zeroed"
        else:
            missing = [w for w in wanted if w not in columns and w not in derivable]
            raise ValueError(f"missing lead(s): {', '.join(missing)}")
        info[kind].append(lead)
    return out, info


def restrict_to_leads(ecg: np.ndarray, keep, leads=CANONICAL_LEADS) -> np.ndarray:
    """Standardized ECGs [..., len(leads), n] as a device recording only ``keep`` would give them
    to ``complete_leads``: the other limb leads derived when two limb leads are kept, every other
    lead zero. What the lead-subset evaluation feeds an encoder."""
    ecg = np.asarray(ecg, dtype=np.float32)
    flat = ecg.reshape(-1, len(leads), ecg.shape[-1])
    out = np.empty_like(flat)
    for r in range(len(flat)):
        out[r] = complete_leads({lead: flat[r, k] for k, lead in enumerate(leads) if lead in keep}, leads, True)[0]
    return out.reshape(ecg.shape)
