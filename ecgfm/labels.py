"""PTB-XL diagnostic superclasses, as in the standard benchmark (Strodthoff et al. 2021).

Every key of a record's ``scp_codes`` whose statement in ``scp_statements.csv`` has
``diagnostic == 1`` contributes its ``diagnostic_class`` (NORM, MI, STTC, CD, HYP); likelihood 0
is kept. A record may have several superclasses; the four binary tasks of the paper (MI, STTC,
CD, HYP) are each class against the rest, over the records that have any superclass.

A user's own labels file (``read_labels_file``, ``label_targets``) is the other label set this
module owns: its targets, their kinds (binary, multi-class, regression) and their checks.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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


# --- a user's labels file ------------------------------------------------------------------------
# The contract (docs/adapting.md): a CSV or Parquet table with ``record_id`` (as ``ecgfm embed``
# names the records), optional ``patient_id`` and ``split`` (train / val / test), and one column
# per target. A missing value leaves that record out of that target only.
ID_COLUMNS = ("record_id", "patient_id", "split")
SPLITS = ("train", "val", "test")
KINDS = ("binary", "multiclass", "regression")


class LabelsError(ValueError):
    """The labels file cannot be used as given (the message names the target, rows or ids)."""


@dataclass(frozen=True)
class Target:
    name: str
    kind: str                       # binary, multiclass or regression
    classes: tuple = ()             # multiclass: the class names, in the order of the outputs

    @property
    def width(self) -> int:
        """How many outputs the target takes in a head."""
        return len(self.classes) if self.kind == "multiclass" else 1

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "classes": list(self.classes)}

    @staticmethod
    def from_dict(d: dict) -> "Target":
        return Target(d["name"], d["kind"], tuple(d.get("classes", ())))


def _ids(values, what: str, limit: int = 5) -> str:
    values = [str(v) for v in values]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"{what} {', '.join(values[:limit])}{more}"


def read_labels_file(path) -> pd.DataFrame:
    """The labels table of a CSV or Parquet file (ids as text), checked: a ``record_id`` column,
    no duplicated ``record_id``, ``split`` values among train / val / test."""
    path = Path(path)
    if not path.exists():
        raise LabelsError(f"{path}: no such labels file")
    if path.suffix.lower() in (".parquet", ".pq"):
        table = pd.read_parquet(path)
    elif path.suffix.lower() in (".csv", ".tsv", ".txt"):
        table = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",",
                            dtype={c: str for c in ID_COLUMNS}, keep_default_na=True)
    else:
        raise LabelsError(f"{path}: labels must be a .csv or .parquet file")
    return check_labels(table, str(path))


def check_labels(table: pd.DataFrame, where: str = "labels") -> pd.DataFrame:
    if "record_id" not in table:
        raise LabelsError(f"{where}: no record_id column (columns: {', '.join(map(str, table.columns))})")
    table = table.copy()
    if table["record_id"].isna().any():
        rows = (np.flatnonzero(table["record_id"].isna().to_numpy()) + 2).tolist()
        raise LabelsError(f"{where}: empty record_id in {_ids(rows, 'line(s)')}")
    table["record_id"] = table["record_id"].astype(str)
    duplicated = table["record_id"][table["record_id"].duplicated()].unique()
    if len(duplicated):
        raise LabelsError(f"{where}: duplicated record_id: {_ids(duplicated, 'ids')}")
    if "patient_id" in table:
        missing = table["patient_id"].isna()
        table["patient_id"] = table["patient_id"].astype(str).where(~missing, None)
    if "split" in table:
        split = table["split"].astype(str).str.strip()
        bad = ~split.isin(SPLITS)
        if bad.any():
            rows = [f"{r} ({v!r})" for r, v in zip(table["record_id"][bad], table["split"][bad])]
            raise LabelsError(f"{where}: split must be one of {', '.join(SPLITS)}; {_ids(rows, 'records')}")
        table["split"] = split
    if not [c for c in table.columns if c not in ID_COLUMNS]:
        raise LabelsError(f"{where}: no target column besides {', '.join(c for c in ID_COLUMNS if c in table)}")
    return table


def infer_kind(values: pd.Series) -> str:
    """0/1 (or true/false) -> binary; text or category -> multiclass; other numbers -> regression."""
    v = values.dropna()
    if pd.api.types.is_bool_dtype(v):
        return "binary"
    if pd.api.types.is_numeric_dtype(v):
        return "binary" if set(np.unique(v.to_numpy(float))) <= {0.0, 1.0} else "regression"
    return "multiclass"


def label_targets(table: pd.DataFrame, columns=None, kinds: dict | None = None) -> list[Target]:
    """The targets of a labels table: ``columns`` (default every column but the ids), each of the
    kind its values say unless ``kinds`` overrides it. Raises on a classification target with a
    single class, or a regression target with a single value."""
    kinds = dict(kinds or {})
    columns = list(columns) if columns else [c for c in table.columns if c not in ID_COLUMNS]
    unknown = [c for c in list(columns) + list(kinds) if c not in table or c in ID_COLUMNS]
    if unknown:
        raise LabelsError(f"no target column {', '.join(map(str, unknown))} in the labels "
                          f"(columns: {', '.join(map(str, table.columns))})")
    targets = []
    for name in columns:
        kind = kinds.get(name) or infer_kind(table[name])
        if kind not in KINDS:
            raise LabelsError(f"target {name}: type {kind!r} is not one of {', '.join(KINDS)}")
        values = table[name].dropna()
        if kind == "binary":
            try:
                numeric = set(np.unique(values.astype(float)))
            except (TypeError, ValueError):
                numeric = {None}
            if not numeric <= {0.0, 1.0}:
                raise LabelsError(f"target {name}: binary needs 0/1 values, found "
                                  f"{_ids(sorted(map(str, values.unique())), 'values')}")
        classes = tuple(sorted(values.astype(str).unique())) if kind == "multiclass" else ()
        distinct = values.astype(str).nunique()
        if distinct < 2:
            raise LabelsError(f"target {name}: a single {'value' if kind == 'regression' else 'class'} "
                              f"({', '.join(map(str, values.unique()[:1])) or 'no labelled record'}) in all records")
        targets.append(Target(str(name), kind, classes))
    return targets


def encode_target(table: pd.DataFrame, target: Target) -> np.ndarray:
    """One target as numbers: 0/1 (binary), class index (multiclass), value (regression); NaN
    where the record has no label."""
    values = table[target.name]
    if target.kind == "multiclass":
        index = {c: k for k, c in enumerate(target.classes)}
        return np.array([np.nan if pd.isna(v) else index.get(str(v), np.nan) for v in values], dtype=np.float64)
    return pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
