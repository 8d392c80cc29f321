"""``report.md`` of an adapted model (``ecgfm.adapt``): what was fitted on what, the test metrics
with their intervals, the excluded records, and per target ROC and precision-recall curves and
a reliability diagram (binary), or predicted against true values (regression), as PNG files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

RELIABILITY_BINS = 10


def _fmt(v) -> str:
    return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3f}"


def metrics_markdown(metrics: pd.DataFrame, split: str = "test") -> str:
    rows = metrics[metrics["split"] == split]
    lines = ["| target | metric | value | 95% CI | n |", "|---|---|---|---|---|"]
    for r in rows.itertuples():
        ci = f"{_fmt(r.ci_low)} - {_fmt(r.ci_high)}" if np.isfinite(r.ci_low) else ""
        lines.append(f"| {r.target} | {r.metric} | {_fmt(r.value)} | {ci} | {r.n} |")
    return "\n".join(lines)


def roc_points(y, p):
    order = np.argsort(-p, kind="mergesort")
    y = np.asarray(y, bool)[order]
    tpr = np.r_[0, np.cumsum(y)] / max(y.sum(), 1)
    fpr = np.r_[0, np.cumsum(~y)] / max((~y).sum(), 1)
    return fpr, tpr


def pr_points(y, p):
    order = np.argsort(-p, kind="mergesort")
    y = np.asarray(y, bool)[order]
    tp = np.cumsum(y)
    return tp / max(y.sum(), 1), tp / np.arange(1, len(y) + 1)


def reliability(y, p, bins: int = RELIABILITY_BINS):
    """(mean probability, observed rate, count) per equal-width probability bin with records."""
    which = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
    out = [(p[which == b].mean(), np.asarray(y, float)[which == b].mean(), int((which == b).sum()))
           for b in range(bins) if (which == b).any()]
    return np.array(out).reshape(-1, 3)


def _figures(out: Path, model, curves: dict) -> dict:
    """target -> [figure file names] (figures/ under the model folder)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    (out / "figures").mkdir(exist_ok=True)
    made = {}
    outputs, y = curves["outputs"], curves["y"]
    for k, t in enumerate(model.targets):
        lab = np.isfinite(y[:, k])
        yk, o = y[lab, k], outputs[t.name][lab]
        names = []
        if t.kind == "binary" and 0 < (yk == 1).sum() < len(yk):
            fig, axes = plt.subplots(1, 3, figsize=(12, 4))
            fpr, tpr = roc_points(yk == 1, o)
            axes[0].plot(fpr, tpr)
            axes[0].plot([0, 1], [0, 1], ls=":", c="grey")
            axes[0].set(xlabel="1 - specificity", ylabel="sensitivity", title=f"{t.name}: ROC (test)")
            rec, prec = pr_points(yk == 1, o)
            axes[1].plot(rec, prec)
            axes[1].axhline((yk == 1).mean(), ls=":", c="grey")
            axes[1].set(xlabel="recall", ylabel="precision", title=f"{t.name}: precision-recall (test)")
            rel = reliability(yk == 1, o)
            axes[2].plot([0, 1], [0, 1], ls=":", c="grey")
            axes[2].plot(rel[:, 0], rel[:, 1], marker="o")
            axes[2].set(xlabel="predicted probability", ylabel="observed rate", title=f"{t.name}: reliability (test)",
                        xlim=(0, 1), ylim=(0, 1))
        elif t.kind == "multiclass":
            fig, axes = plt.subplots(1, 1, figsize=(5, 4))
            for c, cls in enumerate(t.classes):
                if 0 < (yk == c).sum() < len(yk):
                    fpr, tpr = roc_points(yk == c, o[:, c])
                    axes.plot(fpr, tpr, label=str(cls))
            axes.plot([0, 1], [0, 1], ls=":", c="grey")
            axes.legend(fontsize=7)
            axes.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"{t.name}: ROC per class (test)")
        elif t.kind == "regression":
            fig, axes = plt.subplots(1, 1, figsize=(5, 4))
            axes.scatter(yk, o, s=6, alpha=0.5)
            lo, hi = float(min(yk.min(), o.min())), float(max(yk.max(), o.max()))
            axes.plot([lo, hi], [lo, hi], ls=":", c="grey")
            axes.set(xlabel="true", ylabel="predicted", title=f"{t.name}: predicted vs true (test)")
        else:
            continue
        fig.tight_layout()
        name = f"figures/{t.name}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        names.append(name)
        made[t.name] = names
    return made


def write_report(out, model, curves: dict) -> Path:
    out = Path(out)
    info, counts, prov = model.info, model.info["counts"], model.info["provenance"]
    figures = _figures(out, model, curves) if curves else {}
    lines = [f"# Adapted model: {', '.join(t.name for t in model.targets)}", "",
             f"- encoder: `{prov['encoder']}` ({prov.get('encoder_name') or 'unnamed'}), mode **{info['mode']}**",
             f"- input: `{prov['input']}` ({prov.get('input_format')}); labels: `{prov['labels']}`",
             f"- split: {info['split_rule']}: train {counts['train']}, val {counts['val']}, test {counts['test']} records",
             f"- labelled records {counts['labels']}: used {counts['used']}, not found {counts['not_found']}, "
             f"rejected by standardization {counts['rejected']} (listed in `excluded.csv`); "
             f"records of the input without labels: {counts['unlabelled_records']}",
             f"- thresholds: {info['threshold_rule']}, chosen on val; strengths chosen on val",
             f"- command: `{prov['command']}`", "", "## Targets", "",
             "| target | kind | classes | threshold | strength | val score |", "|---|---|---|---|---|---|"]
    for t in info["targets"]:
        lines.append(f"| {t['name']} | {t['kind']} | {', '.join(map(str, t['classes']))} | {_fmt(t['threshold'])} | "
                     f"{t['strength']:g} | {_fmt(t['validation_score'])} |")
    lines += ["", f"## Test metrics ({int(info['settings']['ci_level'] * 100)}% paired bootstrap intervals, "
              f"{info['settings']['bootstrap_resamples']} resamples)", "", metrics_markdown(model.metrics), ""]
    if len(model.excluded):
        lines += ["## Excluded records", "", "| reason | records |", "|---|---|"]
        for (status, reason), n in model.excluded.groupby(["status", "reason"]).size().items():
            lines.append(f"| {status}: {reason} | {n} |")
        lines.append("")
    if figures:
        lines += ["## Figures", ""]
        for target, names in figures.items():
            lines += [f"![{target}]({name})" for name in names] + [""]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


HEADLINE = {"binary": ["AUROC", "AUPRC"], "multiclass": ["macro_AUROC", "balanced_accuracy"],
            "regression": ["R2", "MAE"]}


def write_dataset_table(metric_files, dataset: str, csv_out, md_out) -> pd.DataFrame:
    """Every model folder's test rows on one dataset (``model``, ``method``, ``mode`` beside
    ``metrics.csv``'s columns) as CSV, and as Markdown the headline metrics per target with
    their intervals, one row per model and mode."""
    from .results import describe_model
    frames = []
    for path in map(Path, metric_files):      # <model>/metrics.csv: the rows of its modes
        frame = pd.read_csv(path)
        frame = frame[frame["split"] == "test"]
        frame.insert(0, "method", describe_model(path.parent.name)["method"])
        frame.insert(0, "model", path.parent.name)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    kinds = dict(zip(table["target"], table["kind"]))
    table = table[["model", "method", "mode"] + [c for c in table.columns if c not in ("model", "method", "mode")]]
    table.to_csv(csv_out, index=False, float_format="%.6g")
    columns = [(t, m) for t, kind in kinds.items() for m in HEADLINE[kind]]
    lines = [f"# Dataset {dataset}: test metrics (95% paired bootstrap intervals)", "",
             "| model | method | mode | " + " | ".join(f"{t} {m}" for t, m in columns) + " |",
             "|---" * (3 + len(columns)) + "|"]
    for (model, method, mode), group in table.groupby(["model", "method", "mode"], sort=True):
        cells = []
        for t, m in columns:
            row = group[(group["target"] == t) & (group["metric"] == m)]
            cells.append("" if row.empty else f"{_fmt(row['value'].iat[0])} ({_fmt(row['ci_low'].iat[0])}-"
                                              f"{_fmt(row['ci_high'].iat[0])})")
        lines.append(f"| {model} | {method} | {mode} | " + " | ".join(cells) + " |")
    n = table.groupby("target")["n"].max()
    lines += ["", "Test records per target: " + ", ".join(f"{t} {int(v)}" for t, v in n.items()) + "."]
    Path(md_out).write_text("\n".join(lines) + "\n")
    return table
