"""Tables 6 and 7 of the paper: the corpus a run standardized, beside the paper's description of it.

* **Table 6** describes each standardized source: the paper's rows (country, patients, samples,
  leads, MV-unit, duration, sampling rate) for its five unlabeled sources, and what a user needs to
  trust a corpus: records in, kept, quarantined (by check), kept with QC flags, zero-padded, age and
  sex, and the median robust peak-to-peak amplitude of each lead with its ratio to PTB-XL's (a
  source whose amplitudes sit at twice PTB-XL's has a scale error that no plausibility gate sees).
* **Table 7** describes PTB-XL per superclass task over the labeled records of the evaluation:
  patients, case ratio, samples, leads, length, duration, sampling rate, and the positives of each
  split.

Everything is computed from a run's ``manifest.parquet`` and ``summary.json`` files (and, for
Table 7, ``eval/labels.parquet``): the numbers describe what was standardized, not what an archive
claims. The paper's cells are in ``ecgfm/paper/corpus.csv``. Pure functions up to ``write_*``.

Definitions (ours): *patients* are distinct ``patient_id``; *samples* are kept records; *leads*
the standardized leads (``stored leads`` the ones the archive stores, before derivation);
*MV-unit* the amplitude step of the stored samples in mV (1 for float tracings in mV), the most
common one; *duration* and *sampling rate* the median recording length in seconds and the most
common rate as read, before resampling and after stripping CODE-style zero padding.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .report import html_page, markdown_page, write_outputs

PUBLISHED_CORPUS = Path(__file__).parent / "paper" / "corpus.csv"

# (key, label) of the rows, in the paper's order; then ours only
TABLE6_PAPER_ROWS = [("country", "Country"), ("patients", "#Patients"), ("samples", "#Sample"),
                     ("leads", "#Leads"), ("mv_unit", "MV-unit"), ("duration_s", "Duration(s)"),
                     ("fs_hz", "Sampling rate(Hz)")]
TABLE6_OUR_ROWS = [("stored_leads", "stored leads"), ("records_in", "records in"),
                   ("quarantined", "quarantined"), ("kept_with_qc_flags", "kept with QC flags"),
                   ("zero_padded", "zero-padded to the full duration"), ("age_median", "age, median"),
                   ("age_iqr", "age, IQR"), ("age_missing", "age unknown"), ("male_share", "male (of known sex)"),
                   ("sex_missing", "sex unknown"), ("amplitude_mv", "median peak-to-peak (mV)"),
                   ("amplitude_vs_ptbxl", "amplitude / PTB-XL's")]
TABLE7_PAPER_ROWS = [("patients", "#Patients"), ("case_ratio", "Case ratio"), ("samples", "#Sample"),
                     ("leads", "#Leads"), ("length", "Length"), ("duration_s", "Duration(s)"),
                     ("fs_hz", "Sampling Rate(Hz)")]
REFERENCE_SOURCE = "ptbxl"       # whose amplitudes every source is compared with


def load_published_corpus(path: str | Path = PUBLISHED_CORPUS) -> pd.DataFrame:
    return pd.read_csv(path, comment="#", dtype={"key": str, "characteristic": str, "value": str})


def _mode(values: pd.Series):
    values = values.dropna()
    return None if values.empty else values.round(6).mode().iloc[0]


def _number(value):
    """A published cell as a number where it is one (country stays text)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


# --- Table 6 ---------------------------------------------------------------------------------------
def source_profile(manifest: pd.DataFrame, summary: dict, country: str | None = None) -> dict:
    """One source's column of Table 6, from its manifest and summary.json."""
    age = pd.to_numeric(manifest.get("age", pd.Series(dtype=float)), errors="coerce")
    sex = manifest.get("sex", pd.Series(dtype=object))
    known_sex = sex.dropna()
    duration = manifest["orig_samples"] / manifest["orig_fs"]
    amplitude = summary.get("median_peak_to_peak_mv", {})
    q1, q3 = (age.quantile([0.25, 0.75]).tolist() if age.notna().any() else (np.nan, np.nan))
    return {
        "country": country or "",
        "patients": int(manifest["patient_id"].nunique()),
        "samples": int(summary["kept"]),
        "leads": len(summary["settings"].get("leads", [])) or None,
        "mv_unit": _mode(manifest["mv_per_unit"]) if "mv_per_unit" in manifest else None,
        "duration_s": float(duration.median()),
        "fs_hz": _mode(manifest["orig_fs"]),
        "stored_leads": _mode(manifest["stored_leads"]) if "stored_leads" in manifest else None,
        "records_in": int(summary["records_in"]),
        "quarantined": int(summary["quarantined"]),
        "kept_with_qc_flags": int((manifest.get("qc_failed", pd.Series(dtype=str)).fillna("") != "").sum()),
        "zero_padded": int((manifest.get("qc_padded_samples", pd.Series(dtype=float)) > 0).sum()),
        "age_median": float(age.median()) if age.notna().any() else None,
        "age_iqr": f"{q1:.0f}-{q3:.0f}" if age.notna().any() else "",
        "age_missing": int(age.isna().sum()),
        "male_share": float((known_sex == "M").mean()) if len(known_sex) else None,
        "sex_missing": int(sex.isna().sum()) if len(sex) else int(len(manifest)),
        "amplitude_mv": amplitude.get("all"),
        "lead_amplitude_mv": {k: v for k, v in amplitude.items() if k != "all"},
        "quarantined_by_check": dict(summary.get("quarantined_by_check", {})),
    }


def table6(profiles: dict[str, dict], published: pd.DataFrame) -> pd.DataFrame:
    """The long comparison: one row per (source, characteristic), ``ours``, ``paper`` and ``diff``.
    Every standardized source of the run is a column; the paper's five unlabeled sources too."""
    reference = profiles.get(REFERENCE_SOURCE, {}).get("lead_amplitude_mv", {})
    rows = []
    for source, prof in profiles.items():
        ratios = [prof["lead_amplitude_mv"][lead] / ref for lead, ref in reference.items()
                  if ref and lead in prof["lead_amplitude_mv"]]
        prof = {**prof, "amplitude_vs_ptbxl": float(np.median(ratios)) if ratios else None}
        for key, _ in TABLE6_PAPER_ROWS + TABLE6_OUR_ROWS:
            rows.append({"key": source, "characteristic": key, "ours": prof.get(key)})
    return _with_paper(pd.DataFrame(rows, columns=["key", "characteristic", "ours"]), published, 6)


def _with_paper(ours: pd.DataFrame, published: pd.DataFrame, number: int) -> pd.DataFrame:
    paper = published[published["table"] == number][["key", "characteristic", "value"]]
    paper = paper.assign(paper=paper["value"].map(_number)).drop(columns="value")
    merged = ours.merge(paper, on=["key", "characteristic"], how="outer")
    rank = {column: {v: i for i, v in enumerate(dict.fromkeys([*ours[column], *paper[column]]))}
            for column in ("key", "characteristic")}
    merged = merged.sort_values(["key", "characteristic"], key=lambda col: col.map(rank[col.name]),
                                ignore_index=True)
    both = merged["ours"].map(lambda v: isinstance(v, (int, float, np.number)) and not pd.isna(v)) & \
        merged["paper"].map(lambda v: isinstance(v, float))
    merged["diff"] = np.nan
    merged.loc[both, "diff"] = merged.loc[both, "ours"].astype(float) - merged.loc[both, "paper"].astype(float)
    merged.insert(0, "table", number)
    return merged


def _cell(value, key: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return "–"
    if isinstance(value, str):
        return value
    if key in ("case_ratio", "male_share"):
        return f"{value:.4f}"
    if key in ("mv_unit",):
        return f"{value:g}"
    if key in ("amplitude_mv", "amplitude_vs_ptbxl", "duration_s", "age_median"):
        return f"{value:.3g}" if key != "duration_s" else f"{value:g}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:g}"


def _signed(value) -> str:
    if value is None or pd.isna(value):
        return "–"
    if float(value).is_integer() or abs(value) >= 100:
        return f"{value:+,.0f}"
    return f"{value:+.4f}" if abs(value) < 1 else f"{value:+.4g}"


def _wide(long: pd.DataFrame, column: str, rows: list[tuple[str, str]], keys: list[str],
          first: str) -> pd.DataFrame:
    """Rows = characteristics (their labels), columns = ``keys``, cells formatted."""
    out = []
    for key, label in rows:
        line = {first: label}
        for k in keys:
            hit = long[(long["key"] == k) & (long["characteristic"] == key)]
            value = hit[column].iloc[0] if len(hit) else None
            line[k] = _signed(value) if column == "diff" else _cell(value, key)
        out.append(line)
    return pd.DataFrame(out, columns=[first, *keys])


def table6_sections(long: pd.DataFrame, profiles: dict[str, dict], paper_keys: list[str]
                    ) -> dict[str, pd.DataFrame]:
    ours_keys = list(profiles)
    common = [k for k in ours_keys if k in paper_keys]
    checks = sorted({c for p in profiles.values() for c in p["quarantined_by_check"]})
    quarantine = pd.DataFrame([{"check": c, **{s: profiles[s]["quarantined_by_check"].get(c, 0) for s in ours_keys}}
                               for c in checks], columns=["check", *ours_keys])
    leads = list(dict.fromkeys(lead for p in profiles.values() for lead in p["lead_amplitude_mv"]))
    amplitude = pd.DataFrame([{"lead": lead, **{s: _cell(profiles[s]["lead_amplitude_mv"].get(lead), "amplitude_mv")
                                                for s in ours_keys}} for lead in leads],
                             columns=["lead", *ours_keys])
    return {
        "ours": _wide(long, "ours", TABLE6_PAPER_ROWS + TABLE6_OUR_ROWS, ours_keys, "characteristic"),
        "paper": _wide(long, "paper", TABLE6_PAPER_ROWS, paper_keys, "characteristic"),
        "ours - paper": _wide(long, "diff", TABLE6_PAPER_ROWS[1:], common, "characteristic"),
        "quarantined, by check": quarantine,
        "median robust peak-to-peak amplitude per lead (mV)": amplitude,
    }


TABLE6_CAPTION = ("Table 6: the standardized sources of this run (ours: kept records, as read before "
                  "resampling) beside the paper's summary of its unlabeled dataset. Amplitudes are the "
                  "median over records of each lead's 0.5-99.5% spread; PTB-XL's is the reference.")
TABLE7_CAPTION = ("Table 7: PTB-XL per superclass task over the labeled records of the evaluation "
                  "(positives; case ratio = positives / labeled records), beside the paper's.")


def write_table6(profiles: dict[str, dict], published: pd.DataFrame, stem) -> list[Path]:
    long = table6(profiles, published)
    paper_keys = list(dict.fromkeys(published.loc[published["table"] == 6, "key"]))
    sections = table6_sections(long, profiles, paper_keys)
    return write_outputs(stem, long, markdown_page(TABLE6_CAPTION, sections),
                         html_page("Table 6", TABLE6_CAPTION, sections))


# --- Table 7 ---------------------------------------------------------------------------------------
def table7(labels: pd.DataFrame, manifest: pd.DataFrame, summary: dict, tasks, published: pd.DataFrame
           ) -> pd.DataFrame:
    """PTB-XL per task, over the labeled records of ``labels`` (eval/labels.parquet)."""
    info = manifest[["record_id", "orig_samples", "orig_fs"]].assign(record_id=manifest["record_id"].astype(str))
    records = labels.assign(record_id=labels["record_id"].astype(str)).merge(info, on="record_id", how="left")
    rows = []
    for task in tasks:
        positive = records[records[task].astype(bool)]
        values = {
            "patients": int(positive["patient_id"].nunique()),
            "case_ratio": float(records[task].astype(bool).mean()),
            "samples": int(len(positive)),
            "leads": len(summary["settings"].get("leads", [])) or None,
            "length": float(positive["orig_samples"].median()),
            "duration_s": float((positive["orig_samples"] / positive["orig_fs"]).median()),
            "fs_hz": _mode(positive["orig_fs"]),
        }
        for split in ("train", "validation", "test"):
            values[f"samples_{split}"] = int((positive["split"] == split).sum())
        rows += [{"key": task, "characteristic": k, "ours": v} for k, v in values.items()]
    return _with_paper(pd.DataFrame(rows, columns=["key", "characteristic", "ours"]), published, 7)


TABLE7_OUR_ROWS = [("samples_train", "#Sample, train folds"), ("samples_validation", "#Sample, validation fold"),
                   ("samples_test", "#Sample, test fold")]


def write_table7(labels: pd.DataFrame, manifest: pd.DataFrame, summary: dict, tasks, published: pd.DataFrame,
                 stem) -> list[Path]:
    long = table7(labels, manifest, summary, tasks, published)
    tasks = list(tasks)
    sections = {
        "ours": _wide(long, "ours", TABLE7_PAPER_ROWS + TABLE7_OUR_ROWS, tasks, "characteristic"),
        "paper": _wide(long, "paper", TABLE7_PAPER_ROWS, tasks, "characteristic"),
        "ours - paper": _wide(long, "diff", TABLE7_PAPER_ROWS, tasks, "characteristic"),
    }
    return write_outputs(stem, long, markdown_page(TABLE7_CAPTION, sections),
                         html_page("Table 7", TABLE7_CAPTION, sections))
