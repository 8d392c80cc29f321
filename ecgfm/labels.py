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
# the superclasses' names as PTB-XL's authors give them (Wagner et al. 2020, Table 4)
SUPERCLASS_NAMES = {"NORM": "normal ECG", "MI": "myocardial infarction", "STTC": "ST/T change",
                    "CD": "conduction disturbance", "HYP": "hypertrophy"}


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


def label_definitions(scp_statements: pd.DataFrame, tasks) -> list[dict]:
    """What each task's output means: its superclass, name and the diagnostic SCP codes that
    make a record positive (``scp_statements.csv``)."""
    mapping = diagnostic_map(scp_statements)
    return [{"task": task, "name": SUPERCLASS_NAMES.get(task, task),
             "scp_codes": sorted(code for code, cls in mapping.items() if cls == task)} for task in tasks]


def split_of_fold(folds: dict) -> dict[int, str]:
    """``evaluation.folds`` ({train: [..], validation: [..], test: [..]}) -> fold -> split name."""
    out = {}
    for split, members in folds.items():
        for fold in members:
            if fold in out:
                raise ValueError(f"evaluation.folds: fold {fold} is in both {out[fold]} and {split}")
            out[int(fold)] = split
    return out


def labeled_table(manifest: pd.DataFrame, scp_statements: pd.DataFrame, folds: dict,
                  tasks=("MI", "STTC", "CD", "HYP")) -> pd.DataFrame:
    """The labeled PTB-XL records of the evaluation, one row each, in the manifest's order.

    Columns: ``row`` (position in the standardized manifest, for ``ShardReader.read``),
    ``record_id``, ``patient_id``, ``strat_fold``, ``split`` (train / validation / test) and one
    boolean column per task. Records without any superclass, or in a fold of no split, are left
    out (the standard benchmark's population). Raises if a patient has records in two splits.
    """
    labels = superclass_labels(manifest["scp_codes"], scp_statements)
    fold_split = split_of_fold(folds)
    split = manifest["strat_fold"].astype(int).map(fold_split)
    keep = labels["has_superclass"].to_numpy() & split.notna().to_numpy()
    table = pd.DataFrame({
        "row": range(len(manifest)),
        "record_id": manifest["record_id"].astype(str).to_numpy(),
        "patient_id": manifest["patient_id"].astype(str).to_numpy(),
        "strat_fold": manifest["strat_fold"].astype(int).to_numpy(),
        "split": split.to_numpy(),
    })
    for task in tasks:
        table[task] = labels[task].to_numpy()
    table = table[keep].reset_index(drop=True)
    check_patient_disjoint(table)
    return table


def check_patient_disjoint(table: pd.DataFrame) -> None:
    splits_per_patient = table.groupby("patient_id")["split"].nunique()
    shared = splits_per_patient[splits_per_patient > 1]
    if len(shared):
        raise ValueError(f"{len(shared)} patients have records in more than one split "
                         f"(e.g. {', '.join(shared.index[:3])}): the folds are not patient-wise")
