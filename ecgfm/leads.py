"""Lead names: the canonical 12-lead order, name normalisation, and the limb-lead laws.

Every reader selects leads by *name*, never by position, through `normalize_lead_name`.
Einthoven's and Goldberger's laws tie the six limb leads to two of them (I and II);
`derive_limb_leads` applies them and `limb_lead_residuals` measures how far a record
departs from them (which catches swapped or mislabelled leads).
"""
from __future__ import annotations

import numpy as np

CANONICAL_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

_ALIASES = {
    "DI": "I", "DII": "II", "DIII": "III", "LEADI": "I", "LEADII": "II", "LEADIII": "III",
    "1": "I", "2": "II", "3": "III",
}


def normalize_lead_name(name: str) -> str:
    """Map the spellings found in the wild (``DI``, ``AVR``, ``avl``, ``v1``) to canonical names.

    Raises ``ValueError`` for a name that is not one of the 12 standard leads.
    """
    key = name.strip().upper().replace(" ", "").replace("_", "").replace("-", "")
    key = _ALIASES.get(key, key)
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


def derive_limb_leads(lead_i: np.ndarray, lead_ii: np.ndarray) -> dict[str, np.ndarray]:
    """III, aVR, aVL, aVF from I and II (Einthoven and Goldberger)."""
    return {
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2.0,
        "aVL": lead_i - lead_ii / 2.0,
        "aVF": lead_ii - lead_i / 2.0,
    }


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
