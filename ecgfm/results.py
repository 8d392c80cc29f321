"""Tidy result rows: one row per (model, protocol, task, setting, seed, split, metric).

Columns: ``model`` (e.g. HL_p60_d2_e512, random_p60_d2_e512, ViT_p60_d2_e512, ResNet50),
``method`` (GL, CL, HL, random, supervised), ``patch``/``depth``/``width`` (empty for the
ResNet), ``protocol`` (linear_probe, finetune, case_ratio, data_usage, risk), ``task``
(MI, STTC, CD, HYP), ``setting`` (full, ratio=0.05, usage=0.5, ...), ``seed``, ``split``
(validation or test), ``metric`` (AUROC, AUPRC, or a risk component), ``value``, ``ci_low`` /
``ci_high`` (95% bootstrap interval on the test fold; empty where none), ``n_train``.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import bootstrap_ci

COLUMNS = ["model", "method", "patch", "depth", "width", "protocol", "task", "setting", "seed",
           "split", "metric", "value", "ci_low", "ci_high", "n_train"]
_VIT = re.compile(r"^(?P<kind>GL|CL|HL|random|ViT)_p(?P<patch>\d+)_d(?P<depth>\d+)_e(?P<width>\d+)(?P<variant>-ptbxl)?$")
RESNET = "ResNet50"


def describe_model(name: str) -> dict:
    """Model name -> {model, method, patch, depth, width}."""
    if name == RESNET:
        return {"model": name, "method": "supervised", "patch": None, "depth": None, "width": None}
    m = _VIT.match(name)
    if not m:
        raise ValueError(f"not a model name of this workflow: {name!r}")
    method = {"ViT": "supervised"}.get(m["kind"], m["kind"])
    return {"model": name, "method": method, "patch": int(m["patch"]), "depth": int(m["depth"]),
            "width": int(m["width"])}


def metric_rows(model: str, protocol: str, split: str, tasks, y: np.ndarray, scores: np.ndarray, *,
                setting: str = "full", seed: int = 0, resamples: int = 0, n_train: int | None = None) -> list[dict]:
    """AUROC and AUPRC rows of one model on one split; with a bootstrap CI when ``resamples``."""
    rows = []
    info = describe_model(model)
    for k, task in enumerate(tasks):
        values = bootstrap_ci(y[:, k], scores[:, k], resamples, seed=seed * 1000 + k)
        for metric, (value, low, high) in values.items():
            rows.append({**info, "protocol": protocol, "task": task, "setting": setting, "seed": seed,
                         "split": split, "metric": metric, "value": value, "ci_low": low, "ci_high": high,
                         "n_train": n_train})
    return rows


def to_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("patch", "depth", "width", "seed", "n_train"):
        frame[col] = frame[col].astype("Int64")
    for col in ("value", "ci_low", "ci_high"):
        frame[col] = frame[col].astype(float)
    return frame


def write_rows(rows, path) -> pd.DataFrame:
    frame = rows if isinstance(rows, pd.DataFrame) else to_frame(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return frame


def concat_rows(paths, out) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in paths]
    frame = pd.concat(frames, ignore_index=True) if frames else to_frame([])
    return write_rows(frame, out)
