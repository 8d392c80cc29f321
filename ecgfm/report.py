"""The paper's tables and figures from the tidy result rows, with the published numbers beside ours.

Every cell of our tables is a test-fold (fold 10) value of ``results/eval/<protocol>.parquet``,
averaged over seeds where a protocol has several (Tables 4-5); the architecture each method is
represented by comes from ``best_architectures.json``, which was chosen on fold 9 only. The
paper's numbers live in ``ecgfm/paper/published.csv`` (one row per published cell, with the table
it comes from). A table is built in three steps, all pure:

1. ``summarize``: result rows -> one test value per (model, protocol, task, setting, metric),
   plus the paper's *criteria* (the sum of the four tasks' AUROC and AUPRC);
2. ``table1`` ... ``grid_table``: pick the rows of one table and give each its *key*, the name of
   its row in the paper (``HL``, ``random@HL``, ``ViT@HL``, ``ResNet50``, ``supervised``);
3. ``compare``: join with the published cells on key, setting, task and metric (and architecture
   for the grid tables) -> ``ours``, ``paper``, ``diff = ours - paper``.

``markdown`` and ``html`` lay a comparison out as the paper does, in three blocks: ours, the
paper's, and the difference. ``architecture_figure`` draws Figures 3-4.
"""
from __future__ import annotations

import html as _html
from pathlib import Path

import numpy as np
import pandas as pd

PUBLISHED = Path(__file__).parent / "paper" / "published.csv"
RISK_COMPONENTS = ("approximation", "usability", "probe_generalization", "encoder_generalization", "total")
ARCH = ["patch", "depth", "width"]
KEYS = ["key", "setting", "task", "metric"]

TITLES = {
    1: "Linear probing of each method's best architecture against a random-init encoder",
    2: "Risk decomposition of the linear probes (1 - AUROC)",
    3: "Fine-tuning of each method's best encoder against the supervised ViT and 1D-ResNet50",
    4: "Fine-tuning at low case ratios",
    5: "Fine-tuning with a share of the training labels",
    8: "AUROC of every linear-probed encoder of the grid",
    9: "AUPRC of every linear-probed encoder of the grid",
    10: "AUROC of every fine-tuned encoder of the grid",
    11: "AUPRC of every fine-tuned encoder of the grid",
}
GRID_TABLES = {8: ("linear_probe", "AUROC"), 9: ("linear_probe", "AUPRC"),
               10: ("finetune", "AUROC"), 11: ("finetune", "AUPRC")}
# the result tables (results/eval/<protocol>.parquet) each table is built from
TABLE_PROTOCOLS = {1: ["linear_probe"], 2: ["risk"], 3: ["finetune"], 4: ["case_ratio"], 5: ["data_usage"],
                   **{n: [protocol] for n, (protocol, _) in GRID_TABLES.items()}}
# read too where they run: Tables 4-5's drops are against the full-data fine-tuning (Table 3's)
TABLE_EXTRA_PROTOCOLS = {4: ["finetune"], 5: ["finetune"]}


def table_protocols(number: int, enabled) -> list[str]:
    """The result tables that table ``number`` is built from, of the ``enabled`` protocols."""
    return TABLE_PROTOCOLS[number] + [p for p in TABLE_EXTRA_PROTOCOLS.get(number, []) if p in enabled]


def load_published(path: str | Path = PUBLISHED) -> pd.DataFrame:
    frame = pd.read_csv(path, comment="#", dtype={"key": str, "setting": str, "task": str, "metric": str,
                                                  "note": str})
    for col in ARCH:
        frame[col] = frame[col].astype("Int64")
    frame["note"] = frame["note"].fillna("")
    return frame


# --- 1. result rows -> test values -------------------------------------------------------------
def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Test-fold rows -> one value per cell: the mean over seeds, their SD and count; the
    bootstrap CI where there is a single seed. Adds the criteria rows (task ``all``)."""
    test = rows[rows["split"] == "test"]
    group = ["model", "method", *ARCH, "protocol", "task", "setting", "metric"]
    out = (test.groupby(group, dropna=False, sort=False)
           .agg(value=("value", "mean"), sd=("value", "std"), n_seeds=("seed", "nunique"),
                ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"), n_train=("n_train", "mean"))
           .reset_index())
    several = out["n_seeds"] > 1
    out.loc[several, ["ci_low", "ci_high"]] = np.nan       # a mean of intervals is not an interval
    return pd.concat([out, _criteria(out)], ignore_index=True)


def _criteria(cells: pd.DataFrame) -> pd.DataFrame:
    """The paper's criteria per model and setting: the sum of the 4 AUROCs and 4 AUPRCs (only
    where all 8 exist)."""
    perf = cells[cells["metric"].isin(["AUROC", "AUPRC"])]
    group = ["model", "method", *ARCH, "protocol", "setting"]
    agg = (perf.groupby(group, dropna=False, sort=False)
           .agg(value=("value", "sum"), cells=("value", "count"), sd=("sd", "first"),
                n_seeds=("n_seeds", "max"), n_train=("n_train", "mean"))
           .reset_index())
    expected = perf.groupby("protocol")["task"].nunique().mul(2)
    agg = agg[agg["cells"] == agg["protocol"].map(expected)].drop(columns="cells")
    agg["sd"] = np.nan
    return agg.assign(task="all", metric="criteria", ci_low=np.nan, ci_high=np.nan)


# --- 2. the rows of each table -------------------------------------------------------------------
def _pick(cells: pd.DataFrame, protocol: str, model: str, key: str) -> pd.DataFrame:
    return cells[(cells["protocol"] == protocol) & (cells["model"] == model)].assign(key=key)


def _arch_name(kind: str, choice: dict) -> str:
    return f"{kind}_p{choice['patch']}_d{choice['depth']}_e{choice['width']}"


def table1(cells: pd.DataFrame, best: dict) -> pd.DataFrame:
    """Each method's best encoder (probe) and a random-init encoder at the same architecture."""
    parts = []
    for method, choice in best.items():
        parts.append(_pick(cells, "linear_probe", choice["model"], method))
        parts.append(_pick(cells, "linear_probe", _arch_name("random", choice), f"random@{method}"))
    return pd.concat(parts, ignore_index=True)


VS_RANDOM = "mean_auroc_vs_random"    # Table 1: each method minus the random init of its architecture
VS_RANDOM_LABEL = "mean AUROC - random init"


def table1_differences(scores: dict, labels: pd.DataFrame, best: dict, tasks, resamples: int, seed: int
                       ) -> pd.DataFrame:
    """Table 1's comparison that the paper makes by eye, with its uncertainty: per method, the mean
    over tasks of (its probe's test AUROC - the random init's), with a paired bootstrap 95% CI over
    the test records. ``scores``: model -> the probe's scores (``linear_probe`` ``scores_out``)."""
    from .metrics import paired_auroc_difference
    from .results import describe_model
    tasks = list(tasks)
    truth = labels.assign(record_id=labels["record_id"].astype(str)).set_index("record_id")
    cells = []
    for method, choice in best.items():
        ours, random = scores[choice["model"]], scores[_arch_name("random", choice)]
        ours, random = ours[ours["split"] == "test"], random[random["split"] == "test"]
        if list(ours["record_id"]) != list(random["record_id"]):
            raise ValueError(f"{choice['model']} and its random init were scored on different records")
        y = truth.loc[ours["record_id"].astype(str), tasks].to_numpy(bool)
        value, low, high = paired_auroc_difference(y, ours[tasks].to_numpy(), random[tasks].to_numpy(),
                                                   resamples, seed)
        cells.append({**describe_model(choice["model"]), "key": method, "protocol": "linear_probe",
                      "task": "mean", "setting": "full", "metric": VS_RANDOM, "value": value, "ci_low": low,
                      "ci_high": high, "sd": np.nan, "n_seeds": 1, "n_train": np.nan})
    return pd.DataFrame(cells)


def _paper_vs_random(paper: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 read the same way: mean AUROC of a method minus its random init's."""
    auroc = paper[paper["metric"] == "AUROC"].groupby("key")["value"].mean()
    rows = [{"table": 1, "key": m, "setting": "full", "task": "mean", "metric": VS_RANDOM,
             "value": auroc[m] - auroc[f"random@{m}"], "note": ""}
            for m in ("CL", "GL", "HL") if m in auroc and f"random@{m}" in auroc]
    for row in rows:
        row.update({c: paper.loc[paper["key"] == row["key"], c].iloc[0] for c in ARCH})
    return pd.DataFrame(rows)


def table2(cells: pd.DataFrame) -> pd.DataFrame:
    """Risk components per method and task, and their average over tasks (the paper's AVR.)."""
    risk = cells[(cells["protocol"] == "risk") & cells["metric"].isin(RISK_COMPONENTS)]
    risk = risk.assign(key=risk["method"])
    average = (risk.groupby(["key", "model", "method", *ARCH, "protocol", "setting", "metric"], dropna=False)
               .agg(value=("value", "mean"), n_seeds=("n_seeds", "max"), n_train=("n_train", "mean"))
               .reset_index().assign(task="average"))
    return pd.concat([risk, average], ignore_index=True)


def table3(cells: pd.DataFrame, best: dict) -> pd.DataFrame:
    """Fine-tuned best encoders, the supervised ViT at each of their architectures, the ResNet."""
    parts = [_pick(cells, "finetune", "ResNet50", "ResNet50")]
    for method, choice in best.items():
        parts.append(_pick(cells, "finetune", _arch_name("ViT", choice), f"ViT@{method}"))
        parts.append(_pick(cells, "finetune", choice["model"], method))
    return pd.concat(parts, ignore_index=True)


DROP = "criteria_drop"      # Tables 4-5: (full-data criteria - criteria) / full-data criteria
DROP_LABEL = "criteria drop"


def criteria_drops(criteria: pd.DataFrame, full: dict) -> pd.DataFrame:
    """Section 4.3's arithmetic: each criteria row's relative drop from its model's criteria on
    all the labels, (full - value) / full. ``criteria``: rows with key, setting, value (and any
    other columns, kept); ``full``: key -> that key's criteria on all the labels (Table 3's). The
    paper's drops are against each method's own Table 3 row, and for the supervised baseline
    against the ViT at (250, 2, 1024), 6.9715 (e.g. (6.9715 - 6.7960) / 6.9715 = 2.52%)."""
    rows = criteria[criteria["key"].isin(list(full))]
    reference = rows["key"].map(full).astype(float)
    return rows.assign(metric=DROP, value=(reference - rows["value"]) / reference, sd=np.nan, ci_low=np.nan,
                       ci_high=np.nan)


def stress_table(cells: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Tables 4 (case_ratio) and 5 (data_usage): one row per method and setting; the supervised
    ViT is the paper's "Supervised Learning (Baseline)" (key ``supervised``). With the full-data
    fine-tuning among ``cells``, each setting's criteria drop from the same model's (``DROP``)."""
    rows = cells[cells["protocol"] == protocol]
    rows = rows.assign(key=rows["method"])
    finetuned = cells[(cells["protocol"] == "finetune") & (cells["metric"] == "criteria")].set_index("model")["value"]
    criteria = rows[(rows["metric"] == "criteria") & rows["model"].isin(finetuned.index)]
    if criteria.empty:
        return rows
    full = dict(zip(criteria["key"], criteria["model"].map(finetuned)))
    return pd.concat([rows, criteria_drops(criteria, full)], ignore_index=True)


def grid_table(cells: pd.DataFrame, protocol: str, metric: str) -> pd.DataFrame:
    """Tables 8-11: every SSL encoder of the grid, one metric and the criteria."""
    rows = cells[(cells["protocol"] == protocol) & cells["method"].isin(["GL", "CL", "HL"])
                 & cells["metric"].isin([metric, "criteria"])]
    return rows.assign(key=rows["method"])


def build_table(number: int, rows: pd.DataFrame, best: dict) -> pd.DataFrame:
    """Our cells of the paper's table ``number`` from the result rows of its protocol(s)."""
    cells = summarize(rows)
    if number in GRID_TABLES:
        return grid_table(cells, *GRID_TABLES[number])
    builders = {1: lambda: table1(cells, best), 2: lambda: table2(cells), 3: lambda: table3(cells, best),
                4: lambda: stress_table(cells, "case_ratio"), 5: lambda: stress_table(cells, "data_usage")}
    return builders[number]()


def table_title(number: int) -> str:
    return f"Table {number}: {TITLES[number]}."


# --- 3. beside the paper -------------------------------------------------------------------------
def compare(ours: pd.DataFrame, published: pd.DataFrame, number: int) -> pd.DataFrame:
    """Our cells of one table joined with the paper's. Rows only one side has are kept (an
    architecture outside our grid, a method we did not run). The grid tables (8-11) match on the
    architecture too; elsewhere each side keeps its own (each method's best may differ)."""
    paper = published[published["table"] == number]
    if number == 1:
        paper = pd.concat([paper, _paper_vs_random(paper)], ignore_index=True)
    paper = paper.drop(columns="table").rename(columns={"value": "paper", "note": "paper_note"})
    ours = ours.rename(columns={"value": "ours"})
    keep = ["key", "model", "setting", "task", "metric", *ARCH, "ours", "ci_low", "ci_high", "sd",
            "n_seeds", "n_train"]
    ours = ours[keep]
    if number in GRID_TABLES:
        merged = ours.merge(paper, on=KEYS + ARCH, how="outer")
    else:
        merged = ours.merge(paper.rename(columns={c: f"paper_{c}" for c in ARCH}), on=KEYS, how="outer")
    merged["paper_note"] = merged["paper_note"].fillna("")
    merged["diff"] = merged["ours"] - merged["paper"]
    merged.insert(0, "table", number)
    return _ordered(merged)


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    key_rank = {k: i for i, k in enumerate(
        ["ResNet50", "supervised", "random@CL", "random@GL", "random@HL", "ViT@CL", "ViT@GL", "ViT@HL",
         "CL", "GL", "HL"])}
    task_rank = {"MI": 0, "STTC": 1, "CD": 2, "HYP": 3, "average": 4, "all": 5}
    metric_rank = {"AUROC": 0, "AUPRC": 1, **{c: i for i, c in enumerate(RISK_COMPONENTS)}, "criteria": 9,
                   VS_RANDOM: 10, DROP: 11}
    setting_value = pd.to_numeric(frame["setting"].str.extract(r"=(.*)$")[0], errors="coerce")
    setting_value = setting_value.fillna(frame["setting"].eq("full").map({True: 2.0, False: -1.0}))
    order = pd.DataFrame({
        "k": frame["key"].map(key_rank).fillna(99), "s": -setting_value,
        "p": frame[ARCH[0]].astype(float), "d": frame[ARCH[1]].astype(float), "w": frame[ARCH[2]].astype(float),
        "m": frame["metric"].map(metric_rank).fillna(99), "t": frame["task"].map(task_rank).fillna(99)})
    cols = ["p", "d", "w", "k", "s", "m", "t"] if frame["table"].iloc[0] in GRID_TABLES else ["k", "s", "p", "m", "t"]
    return frame.loc[order.sort_values(cols, kind="stable").index].reset_index(drop=True)


# --- layout ----------------------------------------------------------------------------------------
def _fmt(value, note="") -> str:
    if note:
        return note
    if value is None or pd.isna(value):
        return "–"
    return f"{value:.4f}"


def _percent(value) -> str:
    return f"{100 * value:.2f}%"


def _with_spread(r) -> str:
    """A value with its 95% interval, or with the SD over seeded draws (folds) where it has one."""
    if pd.notna(r.get("ci_low")) and pd.notna(r.get("ci_high")):
        return f"{r['ours']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
    if pd.notna(r.get("sd")) and r.get("n_seeds", 1) > 1:
        return f"{r['ours']:.4f} ± {r['sd']:.4f}"
    return _fmt(r["ours"])


def _layout(comp: pd.DataFrame, number: int):
    """(row index columns, column label function, column order) of a table as the paper lays it out."""
    tasks = [t for t in ["MI", "STTC", "CD", "HYP"] if t in set(comp["task"])] or ["MI", "STTC", "CD", "HYP"]
    if number == 2:
        return ["key", "setting", "task"], (lambda r: r["metric"]), list(RISK_COMPONENTS)
    if number in GRID_TABLES:
        methods = [m for m in ["CL", "GL", "HL"] if m in set(comp["key"])]
        cols = [f"{t} {m}" for t in tasks for m in methods] + [f"criteria {m}" for m in methods]
        return ARCH, (lambda r: f"{'criteria' if r['metric'] == 'criteria' else r['task']} {r['key']}"), cols
    cols = [f"AUROC {t}" for t in tasks] + [f"AUPRC {t}" for t in tasks] + ["criteria"]
    if number == 1:
        cols.append(VS_RANDOM_LABEL)
    if number in (4, 5):
        cols.append(DROP_LABEL)
    index = ["key", "setting"] if number in (4, 5) else ["key"]
    labels = {"criteria": "criteria", VS_RANDOM: VS_RANDOM_LABEL, DROP: DROP_LABEL}
    return index, (lambda r: labels.get(r["metric"], f"{r['metric']} {r['task']}")), cols


def blocks(comp: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A comparison -> {"ours", "paper", "ours - paper"}: wide tables of formatted cells, rows as
    the paper lays them out. Ours and the paper's carry their own architecture columns (outside
    the grid tables the best architectures may differ); the difference is by row key."""
    number = int(comp["table"].iloc[0])
    index, label, columns = _layout(comp, number)
    comp = comp.assign(column=comp.apply(label, axis=1))
    if number not in GRID_TABLES and number != 2:
        ours_arch, paper_arch = ARCH, [f"paper_{c}" for c in ARCH]
    else:
        ours_arch = paper_arch = []
    ours_cell = _with_spread if number == 2 else (
        lambda r: _with_spread(r) if r["metric"] == VS_RANDOM else
        _percent(r["ours"]) if r["metric"] == DROP else _fmt(r["ours"]))
    sides = {
        "ours": (comp[comp["ours"].notna()], ours_arch, ours_cell),
        "paper": (comp[comp["paper"].notna() | (comp["paper_note"] != "")], paper_arch,
                  lambda r: _percent(r["paper"]) if r["metric"] == DROP else _fmt(r["paper"], r["paper_note"])),
        "ours - paper": (comp[comp["diff"].notna() & (comp["metric"] != VS_RANDOM)], [],
                         lambda r: f"{100 * r['diff']:+.2f} pt" if r["metric"] == DROP else f"{r['diff']:+.4f}"),
    }
    out = {}
    for name, (side, arch, cell) in sides.items():
        rows = index + [c for c in arch if c not in index]
        if side.empty:
            out[name] = pd.DataFrame(columns=rows + columns)
            continue
        side = side.assign(cell=side.apply(cell, axis=1))
        for c in rows:
            if c in ARCH or c.startswith("paper_"):
                side[c] = side[c].map(lambda v: "" if pd.isna(v) else str(int(v)))
        wide = side.set_index(rows + ["column"])["cell"].unstack("column")
        order = side[rows].drop_duplicates()                 # rows in the comparison's order
        wide = wide.reindex(index=order[rows[0]] if len(rows) == 1 else pd.MultiIndex.from_frame(order))
        wide = wide.reindex(columns=[c for c in columns if c in wide.columns]).reset_index()
        wide.columns.name = None
        out[name] = wide.rename(columns={f"paper_{c}": c for c in ARCH}).fillna("–")
    return out


TABLE_NOTES = {1: (
    "Mean AUROC - random init: the mean over the four tasks of a method's test AUROC minus that of "
    "the random-init encoder of the same architecture, probed the same way, with a paired bootstrap "
    "95% interval over the test records (both models scored on each resample); the paper's is read "
    "off its own Table 1 cells. Architectures: evaluation.selection (task_medians: per factor value, "
    "the mean over tasks of its boxes' median fold-9 AUROC, ties to the smaller mean range), the "
    "reading of section 4.1 that gives the paper's CL (250, 2, 1024), GL (60, 2, 512) and HL (60, 2, "
    "512) from its own Table 8 (the pooled median gives CL (250, 8, 1024), one of its OOM models; "
    "docs/evaluation.md); selection: paper pins those three. The paper's slip: its CL row prints MI "
    "AUROC 0.7238 where Table 8 has 0.7283 for the same model; the printed criteria 4.8867 is the sum "
    "with 0.7283 (4.8822 with the printed cell)."), 2: (
    "Components as Dubois et al. (2023) define them (github YannDubs/SSL-Risk-Decomposition, "
    "utils/collect_results.py make_risk_decomposition): approximation and usability are the training "
    "risks of the best probes (C tuned on folds 1-8 themselves), probe generalization the risk on "
    "held-out training patients minus that, encoder generalization the test risk minus the held-out "
    "risk; they add up to the total, the fold-9-tuned probe's test risk. The risk is 1 - AUROC, not "
    "the reference's 0-1 error (the paper does not say which it used; its totals are not 1 - its "
    "Table 1 AUROCs). The SSL encoder is the variant pretrained with folds 1-8 (unlabeled). "
    "Approximation is an upper bound: the supervised ViT is early-stopped. Folds 9-10 carry cleaner "
    "labels than folds 1-8, which biases encoder generalization downward. Setting full: held-out "
    "patients drawn from folds 1-8 (stratified by label), [paired bootstrap 95% interval]; "
    "heldout=fold: each of folds 1-8 in turn as the held-out set, mean ± SD over folds. The paper "
    "contradicts itself: its caption says fine-tuned downstream models, its text (section 4.2, "
    "Ablations) linear probes, which we decompose; its prose says GL has the lowest representation "
    "usability error, its own numbers give GL the highest (average 0.2109 against CL 0.1007, HL "
    "0.1074)."), 3: (
    "The paper's slip: its supervised ViT at (250, 2, 1024) prints criteria 6.9715 for cells that add "
    "up to 6.9705 (section 4.3's text and its Tables 4-5 drops use 6.9715)."), 4: (
    "Case ratios 5%, 2% and 1% of 7,000 training ECGs per disease, as Table 4 and section 4.3 state; "
    "Appendix A.3 says 1%, 5% and 25% for the same experiment. Criteria drop: (criteria with all the "
    "labels - criteria) / criteria with all the labels, of the same model (section 4.3's arithmetic: "
    "each method against its Table 3 row, the supervised baseline against the ViT at (250, 2, 1024), "
    "6.9715: evaluation.supervised.reference_method CL); the paper's drops are those its text "
    "states."), 5: (
    "Shares of our training labels (folds 1-8 with a superclass: 17,088 records on real PTB-XL). "
    "The paper's 9,806 / 4,903 / 1,961 samples imply a pool of 19,612, which no split or record "
    "filter of PTB-XL we tried gives without fold 10 (folds 1-9: 19,601 records, 19,235 with a "
    "superclass; docs/evaluation.md); its text says 21,265 samples from 8,000 patients. Criteria drop "
    "as in Table 4: against the same model with all the labels; the supervised baseline against the "
    "ViT at (250, 2, 1024)."), 8: (
    "OOM: the paper reports 8 models, not 8 cells, out of memory (CL at (60, 8, 1024), (125, 8, 1024) "
    "and (250, 8, 1024); HL at those three and at (250, 8, 256) and (250, 8, 512)); each is OOM in "
    "every task's cell.")}


def caption(number: int, comp: pd.DataFrame) -> str:
    seeds = comp["n_seeds"].dropna()
    seed_text = (f"mean of {int(seeds.max())} seeded draws" if len(seeds) and seeds.max() > 1 and number != 2
                 else "one run, 95% bootstrap CI in the CSV")
    note = f" {TABLE_NOTES[number]}" if number in TABLE_NOTES else ""
    return (f"Table {number}: {TITLES[number]}. Ours: test fold 10, {seed_text}; each method's "
            f"architecture chosen on fold 9 (section 4.1's rule). Paper: Song et al., KDD 2025, Table {number}."
            f"{note}")


def markdown(comp: pd.DataFrame) -> str:
    number = int(comp["table"].iloc[0])
    return markdown_page(caption(number, comp), blocks(comp))


def html(comp: pd.DataFrame) -> str:
    number = int(comp["table"].iloc[0])
    return html_page(f"Table {number}", caption(number, comp), blocks(comp))


def markdown_page(heading: str, sections: dict[str, pd.DataFrame]) -> str:
    """A caption and named wide tables as Markdown."""
    parts = [f"### {heading}", ""]
    for name, wide in sections.items():
        parts += [f"**{name}**", "", markdown_table(wide), ""]
    return "\n".join(parts)


def markdown_table(wide: pd.DataFrame) -> str:
    if wide.empty:
        return "(no cell in common)"
    header = "| " + " | ".join(map(str, wide.columns)) + " |"
    rule = "|" + "|".join("---" for _ in wide.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in wide.astype(str).to_numpy()]
    return "\n".join([header, rule, *body])


def html_page(title: str, heading: str, sections: dict[str, pd.DataFrame]) -> str:
    """A caption and named wide tables as one self-contained HTML page."""
    style = ("body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse;margin-bottom:1.5em}"
             "td,th{border:1px solid #bbb;padding:2px 6px;text-align:right} th{background:#eee}")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_html.escape(title)}</title>"
             f"<style>{style}</style></head><body><h3>{_html.escape(heading)}</h3>"]
    for name, wide in sections.items():
        parts.append(f"<h4>{_html.escape(name)}</h4>" + wide.to_html(index=False, border=0, escape=True))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_table(comp: pd.DataFrame, stem: str | Path) -> list[Path]:
    """tableN.csv (the long comparison, one row per cell), tableN.md and tableN.html."""
    return write_outputs(stem, comp, markdown(comp), html(comp))


def write_outputs(stem: str | Path, long: pd.DataFrame, md: str, page: str) -> list[Path]:
    """``stem``.csv (one row per cell), .md and .html."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".csv"), stem.with_suffix(".md"), stem.with_suffix(".html")]
    long.to_csv(paths[0], index=False, float_format="%.6g")
    paths[1].write_text(md)
    paths[2].write_text(page)
    return paths


# --- fewer leads (not a table of the paper) -------------------------------------------------------
LEAD_TABLE_CAPTION = (
    "Fewer leads: each method's chosen encoder on PTB-XL fold 10 when only some leads are recorded "
    "(limb leads derived from two kept ones, the others zero, as ecgfm embed feeds them): AUROC of a "
    "linear probe trained on that subset, and of the fine-tuned 12-lead model given that subset. "
    "Subsets that give the same input (I+II and the six limb leads; 8 independent leads and 12) are "
    "the same rows. 95% bootstrap intervals in the CSV.")


def lead_table(rows: pd.DataFrame, best: dict, subsets) -> pd.DataFrame:
    """Long: method, subset, protocol (probe / fine-tuned), task (and ``mean``), value, CI."""
    test = rows[(rows["split"] == "test") & (rows["metric"] == "AUROC")]
    method_of = {choice["model"]: method for method, choice in best.items()}
    out = test.assign(key=test["model"].map(method_of), subset=test["setting"].str.replace("leads=", "", n=1),
                      protocol=test["protocol"].map({"lead_subset_probe": "linear probe",
                                                     "lead_subset_finetune": "fine-tuned (12 leads)"}))
    keep = ["key", "model", "subset", "protocol", "task", "value", "ci_low", "ci_high"]
    out = out[keep]
    mean = out.groupby(["key", "model", "subset", "protocol"], sort=False)["value"].mean().reset_index()
    out = pd.concat([out, mean.assign(task="mean")], ignore_index=True)
    order = {name: k for k, name in enumerate(subsets)}
    return out.sort_values(["key", "protocol", "subset"], key=lambda c: c.map(order) if c.name == "subset" else c,
                           kind="stable", ignore_index=True)


def write_lead_table(rows: pd.DataFrame, best: dict, subsets, stem) -> list[Path]:
    long = lead_table(rows, best, subsets)
    wide = (long.assign(column=long["task"]).pivot_table(index=["key", "protocol", "subset"], columns="column",
                                                         values="value", sort=False)
            .reset_index())
    wide["subset"] = pd.Categorical(wide["subset"], categories=list(subsets), ordered=True)
    wide = wide.sort_values(["key", "protocol", "subset"]).reset_index(drop=True)
    tasks = [c for c in ("MI", "STTC", "CD", "HYP", "mean") if c in wide.columns]
    wide = wide[["key", "protocol", "subset", *tasks]]
    for col in tasks:
        wide[col] = wide[col].map(lambda v: _fmt(v))
    wide = wide.rename(columns={"key": "method", "subset": "leads", **{t: f"AUROC {t}" for t in tasks}})
    wide["leads"] = wide["leads"].astype(str)
    sections = {"ours": wide}
    return write_outputs(stem, long, markdown_page(LEAD_TABLE_CAPTION, sections),
                         html_page("Fewer leads", LEAD_TABLE_CAPTION, sections))


# --- PTB-XL's benchmark task sets, beside the peers (not a table of the paper) ------------------------
PEERS = Path(__file__).parent / "paper" / "peers.csv"
BENCHMARK_CAPTION = (
    "PTB-XL's benchmark task sets (Strodthoff et al. 2021): macro AUROC on fold 10 with its bootstrap 95% "
    "interval. Ours: each method's chosen encoder and the random init of its architecture by a multi-label "
    "linear probe (one logistic regression per class, C chosen on fold 9) on frozen embeddings; on the task "
    "sets of evaluation.ptbxl_benchmark.finetune_task_sets also each chosen encoder fine-tuned (LP-FT: the "
    "head from the probe, then encoder and head together, early stopping on fold 9) and, trained from scratch "
    "with the same multi-label head, the supervised ViT at each chosen architecture (ViT@<method>) and the "
    "1D-ResNet50 (Table 3's baselines). The peers' published figures beside ours, each with its mode, its "
    "pretraining data and its source (ecgfm/paper/peers.csv); the supervised references (xresnet1d101, "
    "resnet1d_wang) are helme's. What differs: the size of the encoders and of their pretraining data, the "
    "training budget, and the peers' heads (a linear head trained by gradient descent, an attention-pooling "
    "head, or fine-tuning).")
PEER_MODES = {"linear_probe": "linear probe", "frozen_head": "frozen, attention-pooling head",
              "finetune": "fine-tuned", "supervised": "supervised from scratch"}
OUR_PROTOCOLS = {
    "linear_probe": "multi-label logistic regression per class on frozen embeddings, C chosen on fold 9",
    "finetune": "LP-FT: linear head from the probe, then encoder (at encoder_lr_scale) and head trained together "
                "by binary cross-entropy, early stopping on fold 9's mean AUROC",
    "supervised": "trained from scratch with a linear multi-label head, binary cross-entropy, early stopping on "
                  "fold 9's mean AUROC"}


def load_peers(path: str | Path = PEERS) -> pd.DataFrame:
    return pd.read_csv(path, comment="#", dtype={"pretraining": str, "note": str}).fillna(
        {"pretraining": "", "note": ""})


def _benchmark_keys(best: dict) -> dict:
    """Our model names -> their rows' keys: each chosen encoder its method, the random init and
    the supervised ViT at a chosen architecture ``random@<methods>`` / ``ViT@<methods>``."""
    keys, shared = {"ResNet50": "ResNet50"}, {}
    for method, choice in best.items():
        keys.setdefault(choice["model"], method)
        for kind in ("random", "ViT"):
            shared.setdefault((kind, _arch_name(kind, choice)), []).append(method)
    keys.update({model: f"{kind}@" + "/".join(methods) for (kind, model), methods in shared.items()})
    return keys


def benchmark_table(rows: pd.DataFrame, best: dict, peers: pd.DataFrame, task_sets) -> pd.DataFrame:
    """Long: one row per (model, mode, task set): ours (each method's chosen encoder, key = its
    method, probed and fine-tuned; the random init at its architecture, ``random@<method>``; the
    supervised ViT, ``ViT@<method>``, and ``ResNet50``), then the peers'; each part in the order
    of its modes (linear probe, frozen head, fine-tuned, supervised from scratch)."""
    test = rows[(rows["split"] == "test") & (rows["protocol"] == "ptbxl_benchmark") & rows["task"].isin(task_sets)]
    keys = _benchmark_keys(best)
    ours = test[test["model"].isin(keys)]
    ours = pd.DataFrame({"key": ours["model"].map(keys), "model": ours["model"], "mode": ours["setting"].map(PEER_MODES),
                         "task_set": ours["task"], "value": ours["value"], "ci_low": ours["ci_low"],
                         "ci_high": ours["ci_high"], "classes_scored": ours["classes_scored"],
                         "classes": ours["classes"], "pretraining": "", "source": "ours",
                         "protocol": ours["setting"].map(OUR_PROTOCOLS)})
    theirs = peers[peers["task_set"].isin(task_sets)]
    theirs = pd.DataFrame({"key": theirs["model"], "model": theirs["model"], "mode": theirs["mode"].map(PEER_MODES),
                           "task_set": theirs["task_set"], "value": theirs["value"], "ci_low": theirs["ci_low"],
                           "ci_high": theirs["ci_high"], "classes_scored": np.nan, "classes": np.nan,
                           "pretraining": theirs["pretraining"], "source": theirs["source"],
                           "protocol": theirs["protocol"]})
    order = {mode: k for k, mode in enumerate(PEER_MODES.values())}
    ours = ours.assign(_o=ours["mode"].map(order)).sort_values(["_o", "key", "task_set"], kind="stable")
    theirs = theirs.assign(_o=theirs["mode"].map(order)).sort_values("_o", kind="stable")
    return pd.concat([ours, theirs], ignore_index=True).drop(columns="_o")


def _interval(r) -> str:
    if pd.isna(r["value"]):
        return "–"
    if pd.notna(r["ci_low"]) and pd.notna(r["ci_high"]):
        return f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
    return f"{r['value']:.3f}"


def write_benchmark_table(rows: pd.DataFrame, best: dict, peers: pd.DataFrame, task_sets, stem) -> list[Path]:
    """tables/ptbxl_benchmark.{csv,md,html}: ours and the peers', one row per model and mode,
    one column per task set."""
    long = benchmark_table(rows, best, peers, task_sets)
    sections = {}
    for label, part in (("ours", long[long["source"] == "ours"]), ("peers (published)", long[long["source"] != "ours"])):
        cells = part.assign(cell=part.apply(_interval, axis=1))
        wide = cells.pivot_table(index=["key", "mode"], columns="task_set", values="cell", aggfunc="first",
                                 sort=False).reset_index()
        wide = wide.reindex(columns=["key", "mode", *task_sets]).fillna("–")
        if label != "ours":
            wide["pretraining"] = wide["key"].map(part.groupby("key")["pretraining"].first()).replace("", "–")
        else:
            scored = part.assign(n=part["classes_scored"].astype("Int64").astype(str) + "/"
                                 + part["classes"].astype("Int64").astype(str))
            listed = {k: ", ".join(f"{t} {n}" for t, n in sorted(zip(g["task_set"], g["n"]),
                                                                  key=lambda p: list(task_sets).index(p[0])))
                      for k, g in scored.groupby(["key", "mode"])}
            wide["classes scored"] = [listed[k] for k in zip(wide["key"], wide["mode"])]
        sections[label] = wide.rename(columns={"key": "model"})
    return write_outputs(stem, long, markdown_page(BENCHMARK_CAPTION, sections),
                         html_page("PTB-XL benchmark task sets", BENCHMARK_CAPTION, sections))


# --- Figures 3-4 -----------------------------------------------------------------------------------
def architecture_figure(rows: pd.DataFrame, method: str, tasks, stem: str | Path, split: str = "validation"):
    """Box plots of one method's linear-probe AUROC per task (rows) by patch size, depth and width
    (columns); whiskers from min to max, as in the paper. ``split`` is the fold shown: the
    validation fold, on which the architecture is chosen. Writes ``stem``.png and .svg."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use = rows[(rows["protocol"] == "linear_probe") & (rows["method"] == method)
               & (rows["split"] == split) & (rows["metric"] == "AUROC")]
    if use.empty:
        raise ValueError(f"no {split} AUROC rows of linear probing for {method}")
    factors = {"patch": "Patch size", "depth": "Block depth", "width": "Embedding size"}
    fig, axes = plt.subplots(len(tasks), 3, figsize=(9, 2.2 * len(tasks)), squeeze=False, sharey="row")
    for i, task in enumerate(tasks):
        for j, (factor, label) in enumerate(factors.items()):
            ax = axes[i][j]
            sub = use[use["task"] == task]
            values = sorted(sub[factor].dropna().unique())
            data = [sub.loc[sub[factor] == v, "value"].to_numpy() for v in values]
            ax.boxplot(data, whis=(0, 100), widths=0.5)
            for k, d in enumerate(data, start=1):          # the encoders themselves, for small grids
                ax.plot(np.full(len(d), k), d, "o", ms=3, alpha=0.5, color="tab:blue")
            ax.set_xticks(range(1, len(values) + 1), [str(int(v)) for v in values])
            if i == len(tasks) - 1:
                ax.set_xlabel(label)
            if j == 0:
                ax.set_ylabel(f"{task} AUROC")
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{method}: linear-probe AUROC ({split} fold) by architecture")
    fig.tight_layout()
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=120)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def figure_name(method: str) -> str:
    """The paper shows HL in Figure 3 and CL, GL in Figure 4."""
    return f"figure3_{method}" if method == "HL" else f"figure4_{method}"
