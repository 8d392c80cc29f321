"""PTB-XL's benchmark task sets, built as Strodthoff et al. (2021) build them.

The reference is their code, github helme/ecg_ptbxl_benchmarking (``code/utils/utils.py``,
``compute_label_aggregations`` and ``select_data``). From each record's ``scp_codes`` (SCP code ->
likelihood) and ``scp_statements.csv``:

* ``all``: every code of the record;
* ``diagnostic``: the codes whose statement has ``diagnostic == 1``;
* ``subdiagnostic`` / ``superdiagnostic``: those codes' ``diagnostic_subclass`` /
  ``diagnostic_class`` (NORM, MI, STTC, CD, HYP), where the statement gives one;
* ``form`` / ``rhythm``: the codes whose statement has ``form == 1`` / ``rhythm == 1``.

The likelihood plays no part: a code listed with likelihood 0 counts like one listed with 100.
A class is kept where more than ``min_count`` records carry it (their ``min_samples``, 0 in every
experiment of the paper, so every class that occurs is kept; ``diagnostic`` is never filtered),
and a record without any label of a set is not part of that set. Folds 1-8 train, 9 validation,
10 test (their ``strat_fold``). On the database of the benchmark (21,837 records) this gives 71,
44, 23, 5, 19 and 12 classes over 21,837, 21,430, 21,430, 21,430, 8,988 and 21,066 records
(tests/test_ptbxl_tasks.py pins them on the real file).

``labels_file`` writes one set in the labels-file format of ``ecgfm finetune``: ``record_id`` as
``ecgfm embed --input PTBXL_DIR`` names the records (the WFDB path below PTBXL_DIR without its
suffix, e.g. ``records500/00000/00001_hr``), ``patient_id``, ``split`` (train / val / test) and
one 0/1 column per class, named by its statement or class code.
"""
from __future__ import annotations

import ast
from pathlib import Path

# pandas and numpy are imported where used: the command line reads TASK_SETS at every start
TASK_SETS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
LABELS_FILE_SPLITS = {"train": range(1, 9), "val": (9,), "test": (10,)}   # strat_fold of each split
RECORD_COLUMN = {500: "filename_hr", 100: "filename_lr"}


def read_statements(path) -> pd.DataFrame:
    """``scp_statements.csv``, indexed by SCP code."""
    import pandas as pd
    table = pd.read_csv(path, index_col=0)
    table.index = table.index.astype(str)
    return table


def _flag(statements: pd.DataFrame, column: str) -> set[str]:
    import pandas as pd
    return set(statements.index[pd.to_numeric(statements[column], errors="coerce") == 1])


def _mapping(statements: pd.DataFrame, column: str) -> dict[str, str]:
    """Diagnostic code -> its value of ``column`` (subclass or class), where it has one."""
    diagnostic = statements.loc[sorted(_flag(statements, "diagnostic"))]
    return {code: str(value) for code, value in diagnostic[column].items() if isinstance(value, str)}


def _labeler(statements: pd.DataFrame, task_set: str):
    """A function: one record's ``scp_codes`` (a dict) -> its labels in ``task_set``."""
    if task_set == "all":
        return lambda codes: set(map(str, codes))
    if task_set in ("diagnostic", "form", "rhythm"):
        members = _flag(statements, task_set)
        return lambda codes: {c for c in codes if c in members}
    if task_set in ("subdiagnostic", "superdiagnostic"):
        mapping = _mapping(statements, "diagnostic_subclass" if task_set == "subdiagnostic" else "diagnostic_class")
        return lambda codes: {mapping[c] for c in codes if c in mapping}
    raise ValueError(f"unknown task set {task_set!r}; the benchmark's are {', '.join(TASK_SETS)}")


def parse_codes(text) -> dict:
    """One ``scp_codes`` cell (a Python dict literal in the CSV) -> dict."""
    return text if isinstance(text, dict) else ast.literal_eval(text)


def task_set_labels(scp_codes: pd.Series, statements: pd.DataFrame, task_set: str, min_count: int = 0
                    ) -> pd.DataFrame:
    """One 0/1 column per class of ``task_set`` (sorted by code), indexed like ``scp_codes``, for
    the records that have a label of the set (the others are left out, as in the benchmark). A
    class is kept where more than ``min_count`` records carry it (never filtered: ``diagnostic``)."""
    import numpy as np
    import pandas as pd
    label = _labeler(statements, task_set)
    sets = [label(parse_codes(text)) for text in scp_codes]
    counts = pd.Series([c for s in sets for c in s], dtype=object).value_counts()
    keep = set(counts.index) if task_set == "diagnostic" else set(counts.index[counts > min_count])
    classes = sorted(keep)
    matrix = np.array([[c in s for c in classes] for s in sets], dtype=np.int8).reshape(len(sets), len(classes))
    frame = pd.DataFrame(matrix, index=scp_codes.index, columns=classes)
    return frame[frame.sum(axis=1) > 0]


def labels_file_split(fold: int) -> str | None:
    """The labels-file split of one ``strat_fold`` (None outside 1-10)."""
    return next((split for split, folds in LABELS_FILE_SPLITS.items() if int(fold) in folds), None)


def labels_file(ptbxl_dir, task_set: str, rate: int = 500, min_count: int = 0) -> tuple[pd.DataFrame, list]:
    """The labels file of ``task_set`` for the records of the PTB-XL folder ``ptbxl_dir``, and the
    database rows left out, as ``(ecg_id, reason)``: those without a waveform at ``rate`` Hz,
    without a label of the set, or outside folds 1-10."""
    import numpy as np
    import pandas as pd
    root = Path(ptbxl_dir)
    db = pd.read_csv(root / "ptbxl_database.csv", index_col="ecg_id")
    labels = task_set_labels(db["scp_codes"], read_statements(root / "scp_statements.csv"), task_set, min_count)
    left_out = [(int(e), f"no label of the task set {task_set}") for e in db.index.difference(labels.index)]
    rows = db.loc[labels.index]
    names = rows[RECORD_COLUMN[int(rate)]].astype(str)
    present = np.array([(root / f"{name}.hea").is_file() for name in names], dtype=bool)
    split = rows["strat_fold"].map(labels_file_split)
    left_out += [(int(e), f"no waveform: {name}.hea is missing") for e, name in names[~present].items()]
    left_out += [(int(e), f"strat_fold {f} is not one of 1-10") for e, f in rows["strat_fold"][present & split.isna()].items()]
    keep = present & split.notna().to_numpy()
    out = pd.DataFrame({"record_id": names[keep].to_numpy(),
                        "patient_id": rows["patient_id"][keep].astype("int64").to_numpy(),
                        "split": split[keep].to_numpy()})
    out = pd.concat([out, labels[keep].reset_index(drop=True)], axis=1)
    return out, sorted(left_out)


def class_counts(labels: pd.DataFrame) -> dict[str, int]:
    """Records per class of a ``task_set_labels`` frame."""
    return {c: int(v) for c, v in labels.sum(axis=0).items()}


def benchmark_table(manifest: pd.DataFrame, statements: pd.DataFrame, folds: dict, task_sets, min_count: int = 0
                    ) -> pd.DataFrame:
    """The workflow's labels of the benchmark: one row per standardized record that has a label in
    any of ``task_sets`` and a fold of ``folds`` (``evaluation.folds``), in the manifest's order.
    Columns: ``row`` (its position in the manifest, for ``ShardReader.read``), ``record_id``,
    ``patient_id``, ``strat_fold``, ``split`` (train / validation / test), then per task set a
    boolean ``<set>`` (the record is in the set) and one 0/1 column ``<set>/<class>`` per class."""
    import pandas as pd

    from .labels import check_patient_disjoint, split_of_fold
    codes = manifest["scp_codes"].reset_index(drop=True)
    split = manifest["strat_fold"].astype(int).map(split_of_fold(folds)).reset_index(drop=True)
    table = pd.DataFrame({"row": range(len(manifest)), "record_id": manifest["record_id"].astype(str).to_numpy(),
                          "patient_id": manifest["patient_id"].astype(str).to_numpy(),
                          "strat_fold": manifest["strat_fold"].astype(int).to_numpy(), "split": split.to_numpy()})
    for name in task_sets:
        labels = task_set_labels(codes, statements, name, min_count)
        table[name] = table.index.isin(labels.index)
        for cls in labels.columns:
            table[f"{name}/{cls}"] = labels[cls].reindex(table.index, fill_value=0).astype("int8")
    keep = table[list(task_sets)].any(axis=1) & table["split"].notna()
    table = table[keep].reset_index(drop=True)
    check_patient_disjoint(table)
    return table


def task_set_columns(table: pd.DataFrame, task_set: str) -> list[str]:
    """The class columns of ``task_set`` in a ``benchmark_table``."""
    return [c for c in table.columns if c.startswith(f"{task_set}/")]
