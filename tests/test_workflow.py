"""The demo DAG end to end through Snakemake, in a temporary results folder."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_snakemake
from ecgfm.config import pretrain_grid, random_init_models

REPO = Path(__file__).resolve().parents[1]


def _demo_config():
    from ecgfm.config import load_config
    return load_config(REPO / "config.yaml", REPO / "profiles" / "demo" / "demo-config.yaml")


DEMO = _demo_config()


def test_demo_dag_standardizes_every_source(demo_results):
    for source, metadata_rows in (("ptbxl", "ptbxl_database.csv"), ("code15", "exams.csv"),
                                  ("samitrop", "exams.csv"), ("ikem", "exams.csv")):
        out = demo_results / "standardized" / source
        summary = json.loads((out / "summary.json").read_text())
        manifest = pd.read_parquet(out / "manifest.parquet")
        quarantine = pd.read_parquet(out / "quarantine.parquet")
        n_meta = len(pd.read_csv(demo_results / "raw" / source / metadata_rows))
        assert summary["records_in"] == n_meta == len(manifest) + len(quarantine)
        assert len(manifest) > 40 and set(quarantine.reason.str[:11]) <= {"no waveform"}
        assert sorted(p.name for p in out.glob("shard-*.h5")) == [f"shard-{k:05d}.h5" for k in
                                                                  range(manifest.shard.max() + 1)]
        assert (demo_results / "logs" / "standardize" / f"{source}.log").exists()
        assert (demo_results / "benchmarks" / "standardize" / f"{source}.tsv").exists()


def test_nothing_to_do_on_a_second_run(demo_results, tmp_path, monkeypatch):
    """Also as users write it, `snakemake --profile demo`, once `ecgfm profiles install` has run."""
    run = run_snakemake("--profile", "profiles/demo", "--config", f"results={demo_results}", "-n")
    assert run.returncode == 0
    assert "Nothing to be done" in run.stdout + run.stderr
    from ecgfm.profiles import install
    install(tmp_path / "snakemake", names=["demo"])
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    run = run_snakemake("--profile", "demo", "--config", f"results={demo_results}", "-n")
    assert run.returncode == 0 and "Nothing to be done" in run.stdout + run.stderr, run.stderr[-2000:]


def test_config_typo_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("standardize: {fs: 250, sampling_rate: 500}\n")
    run = run_snakemake("--profile", "profiles/demo", "--configfile", str(bad), "-n", timeout=120)
    assert run.returncode != 0
    assert "sampling_rate" in run.stdout + run.stderr


def test_demo_dag_evaluates_every_protocol(demo_results):
    from ecgfm.config import load_config
    from ecgfm.results import COLUMNS
    config = load_config(REPO / "config.yaml", REPO / "profiles" / "demo" / "demo-config.yaml")
    ev = config["evaluation"]
    eval_dir = demo_results / "eval"
    labels = pd.read_parquet(eval_dir / "labels.parquet")
    assert labels.groupby("patient_id")["split"].nunique().max() == 1
    n_train = int((labels["split"] == "train").sum())
    best = json.loads((eval_dir / "best_architectures.json").read_text())
    assert sorted(best) == ["CL", "GL", "HL"]
    rows = {p: pd.read_parquet(eval_dir / f"{p}.parquet")
            for p in ("linear_probe", "finetune", "case_ratio", "data_usage", "risk")}
    for protocol, frame in rows.items():
        assert list(frame.columns) == COLUMNS and len(frame) and frame["value"].notna().all(), protocol
        assert set(frame["protocol"]) == {protocol}
        assert set(frame["task"]) == set(ev["tasks"])
    # linear probing: 6 pretrained + 2 random-init encoders, test rows with a CI around the value
    probe = rows["linear_probe"]
    n_probed = len(pretrain_grid(config)) + len(random_init_models(config))
    assert set(probe["method"]) == {"GL", "CL", "HL", "random"} and probe["model"].nunique() == n_probed
    test = probe[probe["split"] == "test"]
    assert ((test["ci_low"] <= test["value"]) & (test["value"] <= test["ci_high"])).all()
    # fine-tuning: the grid, the supervised ViT(s) at the chosen architectures, the ResNet
    ft = rows["finetune"]
    vits = {f"ViT_p{c['patch']}_d{c['depth']}_e{c['width']}" for c in best.values()}
    assert set(ft["model"]) == set(probe[probe["method"] != "random"]["model"]) | vits | {"ResNet50"}
    for model in ft["model"].unique():
        saved = json.loads((eval_dir / "finetune" / model / "config.json").read_text())
        assert saved["tasks"] == ev["tasks"] and saved["preprocessing"]["fs"] == 250
    # case ratios: exact training size per draw, every ratio x seed x best model (+ the ViT)
    cr = rows["case_ratio"]
    assert set(cr["n_train"]) == {ev["case_ratio_train_size"]}
    assert set(cr["setting"]) == {f"ratio={r:g}" for r in ev["case_ratios"]}
    assert set(cr["seed"]) == set(range(ev["seeds"]))
    assert set(cr["model"]) == {c["model"] for c in best.values()} | {
        "ViT_p{patch}_d{depth}_e{width}".format(**best[ev["supervised"]["reference_method"]])}
    du = rows["data_usage"]
    assert {s: set(g["n_train"]) for s, g in du.groupby("setting")} == {
        f"usage={f:g}": {round(f * n_train)} for f in ev["data_usage"]}
    # risk: the four components add up to the total (the test risk) for every method and task
    risk = rows["risk"].pivot_table(index=["model", "task"], columns="metric", values="value")
    parts = risk[["approximation", "usability", "probe_generalization", "encoder_generalization"]].sum(axis=1)
    assert ((parts - risk["total"]).abs() < 1e-9).all() and len(risk) == 12
    # every component has its paired bootstrap interval; the fold-wise estimate has folds 1-8
    full = rows["risk"][rows["risk"]["setting"] == "full"]
    assert len(full) == 3 * 4 * 5 and ((full["ci_low"] <= full["value"]) & (full["value"] <= full["ci_high"])).all()
    assert set(rows["risk"].loc[rows["risk"]["setting"] == "heldout=fold", "seed"]) == set(range(1, 9))


def test_demo_dag_writes_every_table_and_figure_from_the_result_rows(demo_results):
    from ecgfm.report import TABLE_PROTOCOLS
    rows = pd.concat([pd.read_parquet(p) for p in (demo_results / "eval").glob("*.parquet")
                      if p.stem != "labels"], ignore_index=True)
    test = rows[rows["split"] == "test"]
    for number, protocols in TABLE_PROTOCOLS.items():
        stem = demo_results / "tables" / f"table{number}"
        table = pd.read_csv(stem.with_suffix(".csv"), dtype={"setting": str})
        assert f"Table {number}" in stem.with_suffix(".md").read_text()
        assert "<table" in stem.with_suffix(".html").read_text()
        ours = table[table["ours"].notna()]
        assert len(ours) and table["paper"].notna().any(), number
        # every cell of ours is the mean over seeds of the test rows of the model it names
        for cell in ours[ours["task"].isin(["MI", "STTC", "CD", "HYP"])].to_dict("records"):
            source = test[(test["protocol"].isin(protocols)) & (test["model"] == cell["model"])
                          & (test["task"] == cell["task"]) & (test["setting"] == cell["setting"])
                          & (test["metric"] == cell["metric"])]
            assert len(source) and source["value"].mean() == pytest.approx(cell["ours"], abs=1e-5), cell
        for _, crit in ours[ours["metric"] == "criteria"].iterrows():
            same = ours[(ours["key"] == crit["key"]) & (ours["setting"] == crit["setting"])
                        & ours["metric"].isin(["AUROC", "AUPRC"])]
            if number not in (8, 9, 10, 11):     # the grid tables hold one metric and the criteria
                assert same["ours"].sum() == pytest.approx(crit["ours"], abs=1e-4)
        # Tables 4-5: each drop is against the same model's criteria with all the labels (Table 3's)
        drops = ours[ours["metric"] == "criteria_drop"]
        assert len(drops) == (len(ours[ours["metric"] == "criteria"]) if number in (4, 5) else 0), number
        for _, drop in drops.iterrows():
            full = test[(test["protocol"] == "finetune") & (test["model"] == drop["model"])]["value"].sum()
            crit = ours[(ours["metric"] == "criteria") & (ours["key"] == drop["key"])
                        & (ours["setting"] == drop["setting"])]["ours"].item()
            assert drop["ours"] == pytest.approx((full - crit) / full, abs=1e-5)   # the CSV keeps 6 digits
    # PTB-XL's benchmark task sets: ours (each chosen encoder, the random init) beside the peers'
    bench = pd.read_csv(demo_results / "tables" / "ptbxl_benchmark.csv")
    ours = bench[bench["source"] == "ours"]
    assert set(ours["task_set"]) == set(DEMO["evaluation"]["ptbxl_benchmark"]["task_sets"])
    assert ours["value"].between(0, 1).all() and (ours["ci_low"] <= ours["value"]).all()
    assert "HL" in set(ours["key"]) and any(k.startswith("random@") for k in ours["key"])
    assert "ECGFounder" in set(bench["key"])
    assert "ECG-JEPA" in (demo_results / "tables" / "ptbxl_benchmark.md").read_text()
    # ... fine-tuned (LP-FT) on finetune_task_sets: the models of finetune_models (the demo: HL's encoder
    # alone; profiles/ptbxl-gpu's test has the supervised rows), the peers' fine-tuned figures and
    # supervised references beside them
    bench_config = DEMO["evaluation"]["ptbxl_benchmark"]
    tuned = ours[ours["mode"] != "linear probe"]
    assert set(tuned["task_set"]) == set(bench_config["finetune_task_sets"])
    assert set(tuned["key"]) == set(bench_config["finetune_models"]) == {"HL"}
    assert set(tuned["mode"]) == {"fine-tuned"}
    assert np.isfinite(tuned["value"]).all() and (tuned["classes_scored"] == tuned["classes"]).all()
    assert ((tuned["ci_low"] <= tuned["value"]) & (tuned["value"] <= tuned["ci_high"])).all()
    peers = bench[bench["source"] != "ours"]
    assert {"fine-tuned", "supervised from scratch"} <= set(peers.loc[peers["task_set"] == "superdiagnostic", "mode"])
    for name in ("figure3_HL", "figure4_CL", "figure4_GL"):
        assert (demo_results / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert "<svg" in (demo_results / "figures" / f"{name}.svg").read_text()[:1000]


def test_demo_shows_the_papers_effects_in_miniature(demo_results):
    """The demo corpus is not separable by random features, pretraining helps every method (HL's
    paired bootstrap interval against its random init excludes zero), HL is not CL, and
    fine-tuning does no harm."""
    rows = {p: pd.read_parquet(demo_results / "eval" / f"{p}.parquet") for p in ("linear_probe", "finetune")}
    probe = rows["linear_probe"][(rows["linear_probe"]["split"] == "test") & (rows["linear_probe"]["metric"] == "AUROC")]
    random = probe[probe["method"] == "random"]
    assert len(random) and (random["value"] < 0.95).all(), random[["model", "task", "value"]]
    table1 = pd.read_csv(demo_results / "tables" / "table1.csv", dtype={"setting": str})
    vs_random = table1[table1["metric"] == "mean_auroc_vs_random"].set_index("key")
    assert vs_random.loc["HL", "ci_low"] > 0, vs_random
    assert (vs_random.loc[["CL", "GL"], "ours"] > 0).all(), vs_random
    best = json.loads((demo_results / "eval" / "best_architectures.json").read_text())
    auroc = probe.pivot_table(index="model", columns="task", values="value")
    assert not np.allclose(auroc.loc[best["CL"]["model"]], auroc.loc[best["HL"]["model"]], atol=1e-3)
    ft = rows["finetune"][(rows["finetune"]["split"] == "test") & (rows["finetune"]["metric"] == "AUROC")]
    assert (ft["value"] >= 0.6).all(), ft[ft["value"] < 0.6][["model", "task", "value"]]
    ft_mean = ft.groupby("model")["value"].mean()
    for choice in best.values():
        assert ft_mean[choice["model"]] >= auroc.loc[choice["model"]].mean() - 1e-9, choice["model"]


def test_demo_dag_reports_each_encoder_on_fewer_leads_and_labels_its_classifiers(demo_results):
    from ecgfm.leads import CANONICAL_LEADS
    config = DEMO
    subsets = list(config["evaluation"]["lead_subsets"])
    rows = pd.read_parquet(demo_results / "eval" / "lead_subsets.parquet")
    best = json.loads((demo_results / "eval" / "best_architectures.json").read_text())
    assert set(rows["model"]) == {c["model"] for c in best.values()}
    assert set(rows["setting"]) == {f"leads={s}" for s in subsets}
    assert set(rows["protocol"]) == {"lead_subset_probe", "lead_subset_finetune"}
    test = rows[(rows["split"] == "test") & (rows["metric"] == "AUROC")].pivot_table(
        index=["model", "protocol", "task"], columns="setting", values="value")
    # two limb leads give all six exactly, and 8 independent leads all twelve: the same inputs
    assert np.allclose(test["leads=I+II"], test["leads=limb"]) and np.allclose(test["leads=8 independent"], test["leads=12"])
    # the fine-tuned model on all twelve leads is the fine-tuned model of Table 3
    ft = pd.read_parquet(demo_results / "eval" / "finetune.parquet")
    ft = ft[(ft["split"] == "test") & (ft["metric"] == "AUROC")].set_index(["model", "task"])["value"]
    for (model, protocol, task), value in test["leads=12"].items():
        if protocol == "lead_subset_finetune":
            assert value == pytest.approx(ft[(model, task)], abs=1e-3)     # batching changes the last float bits
    table = (demo_results / "tables" / "leads.md").read_text()
    assert "Fewer leads" in table and all(f"| {s} |" in table for s in subsets)
    # what each output means, with the threshold chosen on fold 9, goes with every fine-tuned model
    definitions = json.loads((demo_results / "eval" / "label_definitions.json").read_text())
    assert [d["task"] for d in definitions] == config["evaluation"]["tasks"] and "AMI" in definitions[0]["scp_codes"]
    saved = json.loads((demo_results / "eval" / "finetune" / best["HL"]["model"] / "config.json").read_text())
    assert [label["task"] for label in saved["labels"]] == config["evaluation"]["tasks"]
    assert all(0 < label["threshold"] < 1 and label["scp_codes"] for label in saved["labels"])
    assert set(CANONICAL_LEADS) == set(config["evaluation"]["lead_subsets"]["12"])


def test_demo_dag_describes_its_corpus_beside_the_papers_tables_6_and_7(demo_results):
    table6 = pd.read_csv(demo_results / "tables" / "table6.csv", dtype={"ours": str, "paper": str})
    for source in ("ptbxl", "code15", "samitrop", "ikem"):
        out = demo_results / "standardized" / source
        manifest = pd.read_parquet(out / "manifest.parquet")
        summary = json.loads((out / "summary.json").read_text())
        ours = table6[table6["key"] == source].set_index("characteristic")["ours"]
        assert int(ours["samples"]) == len(manifest) == summary["kept"]
        assert int(ours["patients"]) == manifest["patient_id"].nunique()
        assert int(ours["records_in"]) == summary["records_in"]
        assert float(ours["amplitude_mv"]) == summary["median_peak_to_peak_mv"]["all"]
    ikem = table6[table6["key"] == "ikem"].set_index("characteristic")
    assert float(ikem.loc["duration_s", "ours"]) == 8.192 and ikem.loc["stored_leads", "ours"] == "8"
    assert ikem.loc["zero_padded", "ours"] == ikem.loc["samples", "ours"]        # padded, kept, counted
    assert float(ikem.loc["duration_s", "paper"]) == 10
    paper = table6[table6["paper"].notna()]
    assert set(paper["key"]) == {"mimic", "code15", "ukb", "samitrop", "ikem"} and len(paper) == 35
    labels = pd.read_parquet(demo_results / "eval" / "labels.parquet")
    table7 = pd.read_csv(demo_results / "tables" / "table7.csv", dtype={"ours": str, "paper": str})
    for task in ("MI", "STTC", "CD", "HYP"):
        ours = table7[table7["key"] == task].set_index("characteristic")
        assert int(ours.loc["samples", "ours"]) == labels[task].sum()
        assert float(ours.loc["case_ratio", "ours"]) == pytest.approx(labels[task].mean(), abs=1e-6)
        assert ours.loc["samples", "paper"] is not None
    for number in (6, 7):
        assert f"Table {number}" in (demo_results / "tables" / f"table{number}.md").read_text()


def test_html_report_opens_in_chromium_and_shows_figures_and_tables(demo_results, tmp_path):
    import browser
    report = tmp_path / "report.html"
    run = run_snakemake("--profile", "profiles/demo", "--config", f"results={demo_results}", "--report", str(report),
                     timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    if browser.chromium() is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    shown = browser.show(report, "Figures", "Figure 3HL", tmp_path)
    assert shown["found"] == {"menu": True, "row": True}
    figures = [i for i in shown["images"] if i["src"].startswith("data:image/png")]
    assert figures and figures[0]["width"] > 500 and figures[0]["shown"] > 200, shown["images"]
    shown = browser.show(report, "Tables", "Table 1", tmp_path)
    assert shown["found"]["row"] and all(f"Table {n}" in shown["text"] for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11))
    assert shown["frames"] and shown["frames"][0]["shown"] > 500          # the table, in its frame
    shown = browser.show(report, "Configuration", "config.yaml", tmp_path)
    assert shown["found"]["menu"]


def _planned(run) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run plans."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:\n)", run.stdout + run.stderr):
        head = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):\n", block)
        if head:
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.MULTILINE)
            jobs.append((head.group(1), wildcards.group(1) if wildcards else ""))
    return jobs


def _dry_run_with(demo_results, tmp_path, overrides: str, targets=()):
    extra = tmp_path / "change.yaml"
    extra.write_text(overrides)
    run = run_snakemake("--profile", "profiles/demo", "-n", *targets, "--configfile", "profiles/demo/demo-config.yaml",
                     str(extra), "--config", f"results={demo_results}", timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    return _planned(run)


def test_a_probing_parameter_reruns_only_probing_and_the_tables(demo_results, tmp_path):
    jobs = _dry_run_with(demo_results, tmp_path, "evaluation:\n  probe: {max_iter: 777}\n")
    rules = {rule for rule, _ in jobs}
    # the probes (and the risk decomposition, which is made of probes), the architecture choice
    # they feed, and the collection, tables, figures and config record of the report
    assert {"linear_probe", "risk", "table", "figure"} <= rules
    assert rules <= {"linear_probe", "risk", "select_architectures", "collect_results", "table", "lead_table",
                     "ptbxl_benchmark_probe", "ptbxl_benchmark_table", "figure", "run_config", "all"}, rules
    assert sum(rule == "linear_probe" for rule, _ in jobs) == len(pretrain_grid(DEMO)) + len(random_init_models(DEMO))


def test_one_sources_standardization_reruns_that_source_onward_only(demo_results, tmp_path):
    change = "sources:\n  code15:\n    standardize: {min_seconds_when_padding: 6}\n"
    jobs = _dry_run_with(demo_results, tmp_path, change)
    rules = {rule for rule, _ in jobs}
    assert [w for rule, w in jobs if rule == "standardize"] == ["source=code15"]
    # CODE-15% is in the pretraining corpus: every encoder and what is made from it reruns ...
    assert sum(rule == "pretrain" for rule, _ in jobs) == len(pretrain_grid(DEMO))
    assert {"embed", "linear_probe", "table"} <= rules
    # ... but nothing that only PTB-XL feeds: its shards, labels, the supervised baselines, the
    # random-init encoders' probes
    assert not rules & {"demo_corpus", "ptbxl_labels", "supervised_vit", "supervised_resnet"}, rules
    assert not [w for rule, w in jobs if rule in ("embed", "linear_probe") and "random_" in w]
    # A dry run cannot see past the best-architecture checkpoint, which this change reruns; asked
    # for fine-tuning results directly, it plans the SSL model's chain and none of the baselines.
    best = json.loads((demo_results / "eval" / "best_architectures.json").read_text())["HL"]
    vit = "ViT_p{patch}_d{depth}_e{width}".format(**best)
    targets = [f"{demo_results}/eval/finetune/{m}/results.parquet" for m in (best["model"], vit, "ResNet50")]
    jobs = _dry_run_with(demo_results, tmp_path, change, targets)
    pretrain = "method=HL, patch={patch}, depth={depth}, width={width}".format(**best)
    assert sorted(jobs) == sorted([("standardize", "source=code15"), ("pretrain", pretrain),
                                   ("finetune", f"model={best['model']}")]), jobs
