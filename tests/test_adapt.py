"""`ecgfm finetune` / `ecgfm predict --model MODEL_DIR` and ecgfm.adapt on one's own labelled ECGs."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgfm.adapt import assign_splits, metric_table, strata
from ecgfm.cli import main
from ecgfm.labels import LabelsError, Target, label_targets
from ecgfm.metrics import sensitivity_threshold, weighted_multiclass, weighted_regression
from ecgfm.wfdb import write_record

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
FAST = "adaptation:\n  bootstrap_resamples: 50\n  finetune: {batch_size: 32, max_epochs: 1, patience: 1}\n"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """The demo's labelled dataset (CinC-style WFDB + labels.csv), plus one 3 s record that
    standardization rejects."""
    from ecgfm.demo import write_demo_source
    dest = tmp_path_factory.mktemp("labelled")
    write_demo_source("labelled", dest, n_patients=70, seed=11)
    short = (np.random.default_rng(0).normal(0, 200, (1500, 12))).astype(np.int16)
    write_record(dest / "records", "SHORT", short, 500, LEADS, mat=True)
    labels = pd.read_csv(dest / "labels.csv", dtype={"record_id": str, "patient_id": str})
    extra = pd.DataFrame([{"record_id": "SHORT", "patient_id": "PS", "MI": 1, "HYP": 0, "conduction": "none",
                           "age": 70.0}])
    pd.concat([labels, extra]).to_csv(dest / "labels.csv", index=False)
    (dest / "fast.yaml").write_text(FAST)
    return dest


def _finetune(capsys, model, data, out, *extra, labels=None):
    code = main(["finetune", "--model", str(model), "--input", str(data / "records"),
                 "--labels", str(labels or data / "labels.csv"), "--out", str(out), "--quiet",
                 "--cache-dir", str(data / "cache"), "--config", str(data / "fast.yaml"), "--device", "cpu",
                 *map(str, extra)])        # on the CPU where a GPU is visible too: its figures are compared
    return code, capsys.readouterr()


# --- the numerics, by hand ----------------------------------------------------------------------------
def test_target_kinds_from_values_and_overrides():
    table = pd.DataFrame({"record_id": ["a", "b", "c", "d"], "split": ["train"] * 4,
                          "af": [0, 1, None, 1], "flag": [True, False, True, False], "rhythm": ["SR", "AF", "SR", None],
                          "age": [40.5, 61.0, 70.0, None], "grade": [0, 1, 2, 1]})
    kinds = {t.name: t.kind for t in label_targets(table)}
    assert kinds == {"af": "binary", "flag": "binary", "rhythm": "multiclass", "age": "regression", "grade": "regression"}
    assert label_targets(table, kinds={"grade": "multiclass"})[-1] == Target("grade", "multiclass", ("0", "1", "2"))
    with pytest.raises(LabelsError, match="target const: a single class"):
        label_targets(table.assign(const=[1, 1, None, 1]))
    with pytest.raises(LabelsError, match="target age: binary needs 0/1"):
        label_targets(table, kinds={"age": "binary"})


def test_split_keeps_patients_together_and_shares_out_each_label():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(300), rng.integers(1, 4, 300))
    rare = np.isin(patients, rng.choice(300, 20, replace=False))            # 20 patients with a rare label
    split = assign_splits(patients, rare[:, None], [0.8, 0.1, 0.1], seed=1)
    frame = pd.DataFrame({"p": patients, "s": split, "rare": rare})
    assert frame.groupby("p")["s"].nunique().max() == 1
    per_split = frame[frame.rare].groupby("s")["p"].nunique()
    assert per_split["train"] == 16 and per_split["val"] == 2 and per_split["test"] == 2
    assert abs((split == "train").mean() - 0.8) < 0.03
    assert (assign_splits(patients, rare[:, None], [0.8, 0.1, 0.1], seed=1) == split).all()
    assert not (assign_splits(patients, rare[:, None], [0.8, 0.1, 0.1], seed=2) == split).all()
    y = np.c_[rng.normal(size=len(patients))]
    bins = strata(y, [Target("v", "regression")], 5)
    assert bins.shape == (len(y), 5) and (bins.sum(axis=1) == 1).all()
    assert np.abs(bins.sum(axis=0) - len(y) / 5).max() <= 1                 # quintiles


def test_metrics_against_scikit_learn():
    from sklearn.metrics import (balanced_accuracy_score, brier_score_loss, f1_score, r2_score, recall_score,
                                 roc_auc_score)
    rng = np.random.default_rng(3)
    yb = rng.integers(0, 2, 80).astype(float)
    p = np.clip(0.3 * yb + rng.random(80) * 0.7, 0, 1)
    yc, pc = rng.integers(0, 3, 80), rng.dirichlet([1, 1, 1], 80)
    yr = rng.normal(size=80)
    fr = yr + rng.normal(size=80)
    yb[5] = np.nan                                        # unlabelled for that target only
    targets = [Target("b", "binary"), Target("c", "multiclass", ("x", "y", "z")), Target("r", "regression")]
    table = metric_table({"b": p, "c": pc, "r": fr}, np.c_[yb, yc, yr], targets, {"b": 0.5}, "test",
                         resamples=200, seed=0).set_index(["target", "metric"])
    lab = np.isfinite(yb)
    got = table["value"]
    assert got["b", "AUROC"] == pytest.approx(roc_auc_score(yb[lab], p[lab]))
    assert got["b", "Brier"] == pytest.approx(brier_score_loss(yb[lab], p[lab]))
    assert got["b", "F1"] == pytest.approx(f1_score(yb[lab], p[lab] >= 0.5))
    assert got["b", "sensitivity"] == pytest.approx(recall_score(yb[lab], p[lab] >= 0.5))
    assert got["b", "specificity"] == pytest.approx(recall_score(1 - yb[lab], p[lab] < 0.5))
    assert got["c", "macro_AUROC"] == pytest.approx(roc_auc_score(yc, pc, multi_class="ovr"))
    assert got["c", "balanced_accuracy"] == pytest.approx(balanced_accuracy_score(yc, pc.argmax(1)))
    assert got["r", "R2"] == pytest.approx(r2_score(yr, fr))
    assert got["r", "pearson_r"] == pytest.approx(np.corrcoef(yr, fr)[0, 1])
    assert table.loc["b", "n"].iloc[0] == 79 and table.loc["r", "n"].iloc[0] == 80
    assert (table["ci_low"] <= table["value"] + 1e-12).all() and (table["value"] <= table["ci_high"] + 1e-12).all()
    # weighted = repeated records
    w = rng.integers(0, 3, 80)
    rep = np.repeat(np.arange(80), w)
    assert weighted_regression(yr, fr, w)["RMSE"][0] == pytest.approx(np.sqrt(np.mean((fr[rep] - yr[rep]) ** 2)))
    assert weighted_multiclass(yc, pc, w)["accuracy"][0] == pytest.approx(np.mean(pc[rep].argmax(1) == yc[rep]))


def test_sensitivity_threshold_by_hand():
    y = np.array([1, 1, 1, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.4, 0.2, 0.5, 0.1])
    assert sensitivity_threshold(y, s, 0.75) == 0.4        # 3 of 4 positives at or above 0.4
    assert sensitivity_threshold(y, s, 0.76) == 0.2


# --- end to end through the CLI, on a WFDB folder and a labels file -----------------------------------
def test_embedding_cache_key_follows_options_and_reading_code_not_the_reading_processes(demo_model, labelled,
                                                                                        monkeypatch, tmp_path):
    """Cached embeddings are reused for another number of reading processes, and never after a
    change of the input options or of the code that reads and standardizes the records."""
    import shutil

    from ecgfm import adapt
    from ecgfm.inference import InputOptions
    key = adapt.embedding_cache_key(demo_model, labelled / "records", InputOptions())
    assert adapt.embedding_cache_key(demo_model, labelled / "records", InputOptions(workers=1)) == key
    assert adapt.embedding_cache_key(demo_model, labelled / "records", InputOptions(pad_short=True)) != key
    code = tmp_path / "ecgfm"
    shutil.copytree(Path(adapt.__file__).parent, code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(adapt, "__file__", str(code / "adapt.py"))
    assert adapt.embedding_cache_key(demo_model, labelled / "records", InputOptions()) == key
    with open(code / "standardize.py", "a") as fh:
        fh.write("\n# a change of the standardization\n")
    assert adapt.embedding_cache_key(demo_model, labelled / "records", InputOptions()) != key


def test_probe_through_the_cli_then_predict(demo_model, labelled, tmp_path, capsys):
    code, out = _finetune(capsys, demo_model, labelled, tmp_path / "m")
    assert code == 0, out.err
    m = tmp_path / "m"
    assert {"config.json", "encoder.safetensors", "head.npz", "model.json", "split.csv", "excluded.csv", "metrics.csv",
            "report.md"} <= {p.name for p in m.iterdir()}
    info = json.loads((m / "model.json").read_text())
    assert {t["name"]: t["kind"] for t in info["targets"]} == {"MI": "binary", "HYP": "binary",
                                                                "conduction": "multiclass", "age": "regression"}
    assert info["targets"][2]["classes"] == ["LAFB", "LBBB", "RBBB", "none"]
    excluded = pd.read_csv(m / "excluded.csv")
    assert sorted(excluded["status"]) == ["not_found", "not_found", "rejected"]
    assert "SHORT" in set(excluded["record_id"]) and excluded.set_index("record_id").loc["SHORT", "reason"]
    assert info["counts"]["rejected"] == 1 and info["counts"]["not_found"] == 2
    metrics = pd.read_csv(m / "metrics.csv")
    assert list(metrics.columns) == ["target", "metric", "value", "ci_low", "ci_high", "split", "n"]
    test = metrics[metrics.split == "test"]
    assert set(test[test.target == "MI"].metric) == {"AUROC", "AUPRC", "sensitivity", "specificity", "F1", "Brier"}
    assert set(test[test.target == "conduction"].metric) == {"macro_AUROC", "accuracy", "balanced_accuracy"}
    assert set(test[test.target == "age"].metric) == {"MAE", "RMSE", "R2", "pearson_r"}
    assert test["ci_low"].notna().all()
    split = pd.read_csv(m / "split.csv", dtype=str)
    assert split.groupby("patient_id")["split"].nunique().max() == 1
    assert len(split) == info["counts"]["used"] == info["counts"]["train"] + info["counts"]["val"] + info["counts"]["test"]
    report = (m / "report.md").read_text()
    assert "not found 2" in report and "rejected by standardization 1" in report
    assert (m / "figures" / "MI.png").read_bytes()[:4] == b"\x89PNG" and "figures/MI.png" in report

    # a second run reads the cached embeddings; predict gives the same scores as the saved head
    code, out = _finetune(capsys, demo_model, labelled, tmp_path / "m2", "--targets", "age")
    assert code == 0 and json.loads((tmp_path / "m2" / "model.json").read_text())["provenance"]["embeddings_cache"]
    assert main(["predict", "--model", str(m), "--input", str(labelled / "records"), "--out",
                 str(tmp_path / "p.csv"), "--quiet", "--device", "cpu"]) == 0
    pred = pd.read_csv(tmp_path / "p.csv")
    assert {"MI", "MI_positive", "HYP_positive", "conduction", "conduction_p_RBBB", "age"} <= set(pred.columns)
    assert pred.set_index("record_id").loc["SHORT", "status"] == "rejected"
    from ecgfm import load_adapted
    from ecgfm.adapt import _ecg_arrays
    from ecgfm.inference import InputOptions
    model = load_adapted(m)
    ok = pred[pred.status == "ok"]
    x = _ecg_arrays(model.encoder, labelled / "records", InputOptions(), ok["record_id"].head(5).tolist())
    direct = model.predict(x)
    np.testing.assert_allclose(direct["MI"], ok["MI"].head(5), atol=1e-5)
    threshold = info["targets"][0]["threshold"]
    assert ((ok["MI"] >= threshold).astype(int) == ok["MI_positive"]).all()


def test_user_split_column_and_sensitivity_threshold(demo_model, labelled, tmp_path, capsys):
    labels = pd.read_csv(labelled / "labels.csv", dtype={"record_id": str, "patient_id": str})
    patients = labels["patient_id"].unique()
    which = dict(zip(patients, np.array(["train", "val", "test"])[np.arange(len(patients)) % 3]))
    labels["split"] = labels["patient_id"].map(which)
    labels[["record_id", "patient_id", "split", "MI", "HYP"]].to_parquet(tmp_path / "l.parquet")
    code, out = _finetune(capsys, demo_model, labelled, tmp_path / "m", "--threshold", "sensitivity=0.8",
                          labels=tmp_path / "l.parquet")
    assert code == 0, out.err
    split = pd.read_csv(tmp_path / "m" / "split.csv", dtype=str).set_index("record_id")["split"]
    assert (split == labels.set_index("record_id").loc[split.index, "split"]).all()
    val = pd.read_csv(tmp_path / "m" / "metrics.csv").query("split == 'val' and metric == 'sensitivity'")
    assert (val["value"] >= 0.8).all()


@pytest.mark.parametrize("change, message", [
    (lambda t: pd.concat([t, t.head(2)]), "duplicated record_id: ids E00000, E00001"),
    (lambda t: t.assign(split=["train", "validation"] * (len(t) // 2) + ["train"] * (len(t) % 2)),
     r"split must be one of train, val, test; records E00001 \('validation'\)"),
    (lambda t: t.assign(split=["train", "val", "test"] * (len(t) // 3) + ["train"] * (len(t) % 3),
                        patient_id="P1"), r"patient\(s\) have records in more than one split: P1"),
    (lambda t: t.assign(HYP=0), "target HYP: a single class"),
    (lambda t: t.assign(record_id="nowhere/" + t["record_id"]), "no record_id of the labels names a record"),
    (lambda t: t.assign(split=np.where(t["MI"].fillna(0) == 1, "test", "train")).assign(
        patient_id=t["record_id"]), r"target MI: \d+ labelled record\(s\) in train, a single class \(0\)"),
])
def test_bad_labels_stop_with_exit_2_naming_what(demo_model, labelled, tmp_path, capsys, change, message):
    labels = pd.read_csv(labelled / "labels.csv", dtype={"record_id": str, "patient_id": str})
    change(labels).to_csv(tmp_path / "bad.csv", index=False)
    code, out = _finetune(capsys, demo_model, labelled, tmp_path / "m", labels=tmp_path / "bad.csv")
    assert code == 2
    assert out.err.startswith("ecgfm finetune: ") and re.search(message, out.err), out.err
    assert not (tmp_path / "m").exists()


def test_lp_ft_through_the_cli_and_the_python_api_on_arrays(demo_model, labelled, tmp_path, capsys):
    code, out = _finetune(capsys, demo_model, labelled, tmp_path / "ft", "--mode", "finetune", "--targets", "MI,age")
    assert code == 0, out.err
    history = pd.read_csv(tmp_path / "ft" / "history.csv")
    assert history["epoch"].tolist() == [-1, 0] and history["best"].sum() == 1
    assert json.loads((tmp_path / "ft" / "model.json").read_text())["mode"] == "finetune"
    assert main(["predict", "--model", str(tmp_path / "ft"), "--input", str(labelled / "records"), "--out",
                 str(tmp_path / "p.csv"), "--quiet"]) == 0
    assert {"MI", "MI_positive", "age"} <= set(pd.read_csv(tmp_path / "p.csv").columns)

    import ecgfm
    from ecgfm.encoder import load_encoder
    from ecgfm.inference import InputOptions, open_input
    encoder = load_encoder(demo_model)
    _, _, outcomes = open_input(labelled / "records", encoder.config["preprocessing"], InputOptions())
    kept = [o for o in outcomes if o.ecg is not None]
    labels = pd.read_csv(labelled / "labels.csv", dtype={"record_id": str, "patient_id": str}).set_index("record_id")
    table = labels.loc[[o.record_id for o in kept]].reset_index()[["record_id", "patient_id", "HYP", "age"]]
    x = np.stack([o.ecg for o in kept])
    model = ecgfm.adapt_encoder(demo_model, x, table, settings={"bootstrap_resamples": 20})
    assert set(model.metrics["target"]) == {"HYP", "age"}
    same = model.predict(x[:4])
    np.testing.assert_allclose(same["HYP"], model.head.outputs(encoder.embed(x[:4]))["HYP"], rtol=1e-5)


def test_a_resnet_trained_from_scratch_through_the_cli_then_predict(labelled, tmp_path, capsys):
    """The 1D-ResNet50 baseline of the datasets: a random-init ResNet folder, fine-tuned, is trained
    from scratch (no probe start, its weights change) with a head of every target kind, and its
    model folder predicts like any other."""
    from safetensors.torch import load_file

    from ecgfm.encoder import load_encoder, write_random_encoder
    arch = {"layers": [1, 1, 1, 1], "width": 2, "kernel_size": 3, "stem_kernel": 7, "leads": 12}
    resnet = write_random_encoder(tmp_path / "ResNet50", "ResNet50", arch,
                                  {"fs": 250, "seconds": 10, "leads": LEADS, "units": "mV"}, seed=0, kind="resnet1d")
    assert load_encoder(resnet).width == 2 * 8 * 4          # pooled features: width x 2^3 x expansion
    code, out = _finetune(capsys, resnet, labelled, tmp_path / "m", "--mode", "finetune")
    assert code == 0, out.err
    m = tmp_path / "m"
    assert pd.read_csv(m / "history.csv")["epoch"].tolist() == [0]        # from scratch: no probe epoch -1
    before, after = load_file(str(resnet / "encoder.safetensors")), load_file(str(m / "encoder.safetensors"))
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)
    test = pd.read_csv(m / "metrics.csv").query("split == 'test'")
    assert {"MI": "AUROC", "conduction": "macro_AUROC", "age": "R2"}.items() <= set(zip(test["target"], test["metric"]))
    assert test["value"].notna().all()
    assert main(["predict", "--model", str(m), "--input", str(labelled / "records"), "--out", str(tmp_path / "p.csv"),
                 "--quiet"]) == 0
    assert {"MI_positive", "conduction", "age"} <= set(pd.read_csv(tmp_path / "p.csv").columns)
    # trained from scratch, the same seed gives the same model, whatever the process drew before
    import ecgfm
    from ecgfm.inference import InputOptions, open_input
    _, _, outcomes = open_input(labelled / "records", load_encoder(resnet).config["preprocessing"], InputOptions())
    kept = [o for o in outcomes if o.ecg is not None][:48]
    labels = pd.read_csv(labelled / "labels.csv", dtype={"record_id": str, "patient_id": str}).set_index("record_id")
    table = labels.loc[[o.record_id for o in kept]].reset_index()[["record_id", "patient_id", "age"]]
    x = np.stack([o.ecg for o in kept])
    from ecgfm.adapt import default_settings
    fast = {"bootstrap_resamples": 0, "finetune": {**default_settings()["finetune"], "batch_size": 32, "max_epochs": 1}}
    runs = [ecgfm.adapt_encoder(resnet, x, table, mode="finetune", settings=fast).metrics for _ in range(2)]
    pd.testing.assert_frame_equal(runs[0], runs[1])


# --- the workflow: datasets: in the demo DAG ----------------------------------------------------------
def test_demo_dag_writes_the_dataset_table(demo_results):
    table = pd.read_csv(demo_results / "tables" / "dataset_demo_labelled.csv")
    assert set(zip(table["model"], table["mode"])) == {(m, mode) for m in ("HL_p125_d2_e64", "random_p125_d2_e64")
                                                        for mode in ("probe", "finetune")} | {("ResNet50", "finetune")}
    assert set(table["kind"]) == {"binary", "multiclass", "regression"} and (table["split"] == "test").all()
    assert table["ci_low"].notna().all()
    md = (demo_results / "tables" / "dataset_demo_labelled.md").read_text()
    assert "| HL_p125_d2_e64 | HL | probe |" in md and "conduction macro_AUROC" in md and "age R2" in md
    assert "| ResNet50 | supervised | finetune |" in md        # the 1D-ResNet50 trained from scratch
    folder = demo_results / "datasets" / "demo_labelled" / "HL_p125_d2_e64" / "finetune"
    assert (folder / "report.md").exists() and (folder / "history.csv").exists()


def test_a_datasets_labels_rerun_only_its_jobs(demo_results):
    import os

    from conftest import run_snakemake
    from test_workflow import _planned
    labels = demo_results / "raw" / "datasets" / "demo_labelled" / "labels.csv"
    before, text = labels.stat(), labels.read_bytes()
    table = pd.read_csv(labels, dtype=str)
    table.loc[0, "HYP"] = "1" if table.loc[0, "HYP"] == "0" else "0"           # one label corrected
    table.to_csv(labels, index=False)
    try:
        run = run_snakemake("--profile", "profiles/demo", "-n", "--config", f"results={demo_results}", timeout=180)
    finally:
        labels.write_bytes(text)
        os.utime(labels, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = _planned(run)
    assert sorted(jobs) == sorted([("dataset_adapt", "dataset=demo_labelled, model=HL_p125_d2_e64"),
                                   ("dataset_adapt", "dataset=demo_labelled, model=random_p125_d2_e64"),
                                   ("dataset_adapt", "dataset=demo_labelled, model=ResNet50"),
                                   ("dataset_table", "dataset=demo_labelled"), ("all", "")]), jobs


def test_a_binary_head_is_the_ptbxl_probe():
    """ecgfm.adapt's binary heads and the PTB-XL linear probe (ecgfm.probe.fit_probe, Tables 1, 8, 9)
    choose their strength the same way (ecgfm.probe.choose_strength): same C, same validation
    AUROC, same test ranking."""
    from ecgfm.adapt import fit_head
    from ecgfm.metrics import auroc
    from ecgfm.probe import fit_probe
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    y = np.c_[x[:, 0] + rng.normal(size=300) > 0.5, x[:, 1] - x[:, 2] + rng.normal(size=300) > 0]
    tr, va, te = slice(0, 200), slice(200, 250), slice(250, 300)
    grid = [0.001, 0.01, 0.1, 1.0]
    probe = fit_probe(x[tr], y[tr], x[va], y[va], grid, 500)
    head, scores = fit_head(x[tr], y[tr].astype(float), x[va], y[va].astype(float),
                            [Target("a", "binary"), Target("b", "binary")], {"c_grid": grid, "max_iter": 500})
    assert [head.strengths["a"], head.strengths["b"]] == probe.c
    assert [scores["a"], scores["b"]] == pytest.approx(probe.validation_auroc, abs=1e-9)
    out, logits = head.outputs(x[te]), probe.scores(x[te])
    for k, name in enumerate("ab"):
        assert auroc(y[te, k], out[name]) == pytest.approx(auroc(y[te, k], logits[:, k]), abs=1e-9)
