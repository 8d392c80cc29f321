"""PTB-XL diagnostic superclasses, as in the standard benchmark (Strodthoff et al. 2021).

Every key of a record's ``scp_codes`` whose statement in ``scp_statements.csv`` has
``diagnostic == 1`` contributes its ``diagnostic_class`` (NORM, MI, STTC, CD, HYP); likelihood 0
is kept. A record may have several superclasses; the four binary tasks of the paper (MI, STTC,
CD, HYP) are each class against the rest, over the records that have any superclass.
"""
from __future__ import annotations

import ast

import pandas as pd

SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")


def diagnostic_map(scp_statements: pd.DataFrame) -> dict[str, str]:
    """SCP code -> diagnostic class, for the diagnostic statements."""
    table = scp_statements.set_index(scp_statements.columns[0]) if "diagnostic" not in \
        scp_statements.index.names else scp_statements
    diag = table[table["diagnostic"] == 1]
    return {str(code): str(cls) for code, cls in diag["diagnostic_class"].items() if isinstance(cls, str)}


def superclass_labels(scp_codes: pd.Series, scp_statements: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per superclass, plus ``has_superclass``, indexed like ``scp_codes``."""
    mapping = diagnostic_map(scp_statements)
    rows = []
    for text in scp_codes:
        classes = {mapping[c] for c in ast.literal_eval(text) if c in mapping}
        rows.append({cls: cls in classes for cls in SUPERCLASSES})
    out = pd.DataFrame(rows, index=scp_codes.index)
    out["has_superclass"] = out[list(SUPERCLASSES)].any(axis=1)
    return out
