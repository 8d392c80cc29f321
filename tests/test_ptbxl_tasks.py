"""PTB-XL's benchmark task sets (ecgfm.ptbxl_tasks) and `ecgfm ptbxl-labels`."""
import pandas as pd
import pytest

from conftest import shared_or_skip
from ecgfm.cli import main
from ecgfm.inference import FileReader
from ecgfm.ptbxl_tasks import TASK_SETS, class_counts, parse_codes, read_statements, task_set_labels

STATEMENTS = pd.DataFrame({
    "diagnostic": [1.0, 1.0, 1.0, 1.0, None, None, None],
    "form": [None, None, 1.0, None, 1.0, None, None],
    "rhythm": [None, None, None, None, None, 1.0, 1.0],
    "diagnostic_class": ["NORM", "MI", "STTC", "MI", None, None, None],
    "diagnostic_subclass": ["NORM", "IMI", "STTC", None, None, None, None],
}, index=["NORM", "IMI", "NDT", "XMI", "LVOLT", "SR", "AFIB"])
CODES = pd.Series(["{'NORM': 100.0, 'SR': 0.0}", "{'IMI': 0.0, 'NDT': 50.0, 'AFIB': 0.0}", "{'LVOLT': 100.0}",
                   "{'XMI': 100.0, 'IMI': 35.0, 'SR': 0.0}"], index=[11, 12, 13, 14])


@pytest.mark.parametrize("task_set, expected", [
    ("all", {11: {"NORM", "SR"}, 12: {"IMI", "NDT", "AFIB"}, 13: {"LVOLT"}, 14: {"XMI", "IMI", "SR"}}),
    ("diagnostic", {11: {"NORM"}, 12: {"IMI", "NDT"}, 14: {"XMI", "IMI"}}),
    ("subdiagnostic", {11: {"NORM"}, 12: {"IMI", "STTC"}, 14: {"IMI"}}),   # XMI has no subclass
    ("superdiagnostic", {11: {"NORM"}, 12: {"MI", "STTC"}, 14: {"MI"}}),    # MI once, from two codes
    ("form", {12: {"NDT"}, 13: {"LVOLT"}}),
    ("rhythm", {11: {"SR"}, 12: {"AFIB"}, 14: {"SR"}}),
])
def test_task_sets_by_hand(task_set, expected):
    """Likelihood 0 counts; records without a label of the set are not in it."""
    got = task_set_labels(CODES, STATEMENTS, task_set)
    assert list(got.columns) == sorted({c for s in expected.values() for c in s})
    assert {i: {c for c in got.columns if row[c]} for i, row in got.iterrows()} == expected


def test_min_count_drops_rare_classes_but_never_diagnostic_ones():
    assert list(task_set_labels(CODES, STATEMENTS, "rhythm", min_count=1).columns) == ["SR"]   # AFIB: 1 record
    assert list(task_set_labels(CODES, STATEMENTS, "rhythm", min_count=1).index) == [11, 14]
    assert list(task_set_labels(CODES, STATEMENTS, "diagnostic", min_count=5).columns) == ["IMI", "NDT", "NORM", "XMI"]
    with pytest.raises(ValueError, match="unknown task set 'super'"):
        task_set_labels(CODES, STATEMENTS, "super")


# the benchmark's own fold-10 labels of `all` (helme/ecg_ptbxl_benchmarking at cdbf4e6,
# output/exp0/data/y_test.npy, columns as its mlb.pkl names them): records per class
HELME_ALL_FOLD10 = {
    "1AVB": 80, "2AVB": 1, "3AVB": 2, "ABQRS": 322, "AFIB": 152, "AFLT": 7, "ALMI": 29, "AMI": 35, "ANEUR": 10,
    "ASMI": 236, "BIGU": 8, "CLBBB": 54, "CRBBB": 54, "DIG": 18, "EL": 9, "HVOLT": 6, "ILBBB": 8, "ILMI": 48,
    "IMI": 268, "INJAL": 14, "INJAS": 22, "INJIL": 2, "INJIN": 2, "INJLA": 2, "INVT": 29, "IPLMI": 5, "IPMI": 3,
    "IRBBB": 112, "ISCAL": 66, "ISCAN": 4, "ISCAS": 17, "ISCIL": 18, "ISCIN": 22, "ISCLA": 14, "ISC_": 128,
    "IVCD": 79, "LAFB": 163, "LAO/LAE": 42, "LMI": 20, "LNGQT": 11, "LOWT": 44, "LPFB": 18, "LPR": 34, "LVH": 214,
    "LVOLT": 18, "NDT": 183, "NORM": 964, "NST_": 77, "NT_": 42, "PAC": 40, "PACE": 29, "PMI": 2, "PRC(S)": 1,
    "PSVT": 2, "PVC": 115, "QWAVE": 55, "RAO/RAE": 10, "RVH": 12, "SARRH": 77, "SBRAD": 64, "SEHYP": 3,
    "SR": 1678, "STACH": 82, "STD_": 101, "STE_": 3, "SVARR": 14, "SVTAC": 3, "TAB_": 3, "TRIGU": 2, "VCLVH": 87,
    "WPW": 8}


def test_real_ptbxl_task_sets():
    """Classes and records of each set on the database of the benchmark (../shared: 21,837 rows,
    the release the benchmark used); `all` on fold 10 equals the benchmark's own test labels."""
    root = shared_or_skip("ptbxl", "ptbxl_database.csv")
    db = pd.read_csv(root, index_col="ecg_id")
    codes = db["scp_codes"].map(parse_codes)
    statements = read_statements(root.parent / "scp_statements.csv")
    sets = {name: task_set_labels(codes, statements, name) for name in TASK_SETS}
    assert {n: s.shape for n, s in sets.items()} == {
        "all": (21837, 71), "diagnostic": (21430, 44), "subdiagnostic": (21430, 23),
        "superdiagnostic": (21430, 5), "form": (8988, 19), "rhythm": (21066, 12)}
    fold = db["strat_fold"]
    assert class_counts(sets["all"][fold == 10]) == HELME_ALL_FOLD10
    assert len(sets["all"][fold == 9]) == 2193          # the benchmark's y_val.npy has 2,193 rows
    assert class_counts(sets["superdiagnostic"]) == {"CD": 4907, "HYP": 2655, "MI": 5486, "NORM": 9528,
                                                     "STTC": 5250}
    assert class_counts(sets["rhythm"]) == {
        "AFIB": 1514, "AFLT": 73, "BIGU": 82, "PACE": 296, "PSVT": 24, "SARRH": 772, "SBRAD": 637, "SR": 16782,
        "STACH": 826, "SVARR": 157, "SVTAC": 27, "TRIGU": 20}
    assert class_counts(sets["subdiagnostic"]) == {
        "AMI": 3086, "CLBBB": 536, "CRBBB": 542, "ILBBB": 77, "IMI": 3281, "IRBBB": 1118, "ISCA": 944, "ISCI": 398,
        "ISC_": 1275, "IVCD": 789, "LAFB/LPFB": 1800, "LAO/LAE": 427, "LMI": 201, "LVH": 2137, "NORM": 9528,
        "NST_": 770, "PMI": 17, "RAO/RAE": 99, "RVH": 126, "SEHYP": 30, "STTC": 2244, "WPW": 80, "_AVB": 827}
    assert class_counts(sets["form"]) == {
        "ABQRS": 3327, "DIG": 181, "HVOLT": 62, "INVT": 294, "LNGQT": 118, "LOWT": 438, "LPR": 340, "LVOLT": 182,
        "NDT": 1829, "NST_": 770, "NT_": 424, "PAC": 398, "PRC(S)": 10, "PVC": 1146, "QWAVE": 548, "STD_": 1009,
        "STE_": 28, "TAB_": 35, "VCLVH": 875}
    diagnostic = class_counts(sets["diagnostic"])
    assert diagnostic["NORM"] == 9528 and sum(diagnostic.values()) == int(sets["diagnostic"].to_numpy().sum())


def test_ptbxl_labels_command_names_records_as_embed_does(tmp_path, capsys):
    from ecgfm.demo import write_demo_source
    write_demo_source("ptbxl", tmp_path / "ptbxl", n_patients=20, seed=3, missing_waveforms=2)
    ids = {item.record_id for item in FileReader(tmp_path / "ptbxl").items()[0]}     # what embed names
    db = pd.read_csv(tmp_path / "ptbxl" / "ptbxl_database.csv", index_col="ecg_id")
    for task_set in TASK_SETS:     # the demo's PTB-XL has records in every set
        out = tmp_path / f"{task_set}.csv"
        assert main(["ptbxl-labels", str(tmp_path / "ptbxl"), "--task-set", task_set, "--out", str(out)]) == 0
        table = pd.read_csv(out)
        assert list(table.columns[:3]) == ["record_id", "patient_id", "split"] and len(table) > 0
        assert set(table["record_id"]) <= ids and table["record_id"].is_unique
        assert table.iloc[:, 3:].isin([0, 1]).all().all() and (table.iloc[:, 3:].sum(axis=1) > 0).all()
    err = capsys.readouterr().err
    assert "left out x2: no waveform" in err                       # the two metadata rows without a record
    table = pd.read_csv(tmp_path / "superdiagnostic.csv")
    assert len(table) == len(db) - 2 and list(table.columns[3:]) == ["CD", "HYP", "MI", "NORM", "STTC"]
    fold = db.set_index(db["filename_hr"]).loc[table["record_id"], "strat_fold"].to_numpy()
    expected = pd.Series(fold).map(lambda f: "train" if f <= 8 else "val" if f == 9 else "test")
    assert table["split"].tolist() == expected.tolist()
    assert table["patient_id"].tolist() == db.set_index("filename_hr").loc[table["record_id"], "patient_id"].astype(int).tolist()


def test_ptbxl_labels_on_real_records100(ptbxl_real, tmp_path):
    out = tmp_path / "rhythm.csv"
    assert main(["ptbxl-labels", str(ptbxl_real), "--task-set", "rhythm", "--rate", "100", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert table["record_id"].str.match(r"^records100/\d{5}/\d{5}_lr$").all()
    # the 21,066 records with a rhythm statement, less those of the 38 rows without a waveform
    assert 21066 - 38 <= len(table) < 21066
    assert (ptbxl_real / f"{table['record_id'].iloc[0]}.hea").is_file()


def test_ptbxl_labels_refuses_a_folder_without_the_database(tmp_path, capsys):
    assert main(["ptbxl-labels", str(tmp_path), "--task-set", "form", "--out", str(tmp_path / "x.csv")]) == 2
    assert "ptbxl_database.csv" in capsys.readouterr().err


# --- the workflow's benchmark: labels, probes, macro AUROC, the table beside the peers ------------------
def test_macro_auroc_by_hand():
    import numpy as np

    from ecgfm.metrics import macro_auroc_ci
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], bool)
    s = np.array([[0.9, 0.2], [0.1, 0.3], [0.8, 0.1], [0.2, 0.4]])
    # class 0: both positives above both negatives -> 1; class 1: positives 0.3, 0.1 vs negatives 0.2, 0.4 -> 1/4
    value, low, high = macro_auroc_ci(y, s, 0, seed=0)
    assert value == pytest.approx((1.0 + 0.25) / 2) and np.isnan(low) and np.isnan(high)
    value, low, high = macro_auroc_ci(y, s, 200, seed=0)
    assert low <= value <= high and 0 <= low and high <= 1
    with pytest.raises(ValueError, match="a positive and a negative"):
        macro_auroc_ci(y[:, :1] | True, s[:, :1], 0, seed=0)


def test_benchmark_labels_probe_and_table(tmp_path):
    import numpy as np

    from ecgfm.evaluate import ptbxl_benchmark_probe
    from ecgfm.probe import write_embeddings
    from ecgfm.ptbxl_tasks import benchmark_table, task_set_columns
    from ecgfm.report import load_peers, write_benchmark_table
    rng = np.random.default_rng(0)
    n = 400
    codes = [str({**({"IMI": 100.0} if k % 3 == 0 else {"NORM": 100.0}), **({"SR": 0.0} if k % 7 else {"AFIB": 0.0}),
                  **({"NDT": 50.0} if k % 4 == 0 else {})}) for k in range(n)]
    manifest = pd.DataFrame({"record_id": [str(k) for k in range(n)], "patient_id": [f"p{k}" for k in range(n)],
                             "strat_fold": [1 + k % 10 for k in range(n)], "scp_codes": codes})
    folds = {"train": list(range(1, 9)), "validation": [9], "test": [10]}
    table = benchmark_table(manifest, STATEMENTS, folds, ["superdiagnostic", "form", "rhythm"])
    assert len(table) == n and table["rhythm"].all() and table["form"].sum() == n // 4
    assert task_set_columns(table, "superdiagnostic") == ["superdiagnostic/MI", "superdiagnostic/NORM",
                                                          "superdiagnostic/STTC"]
    assert table["split"].tolist()[:10] == ["train"] * 8 + ["validation", "test"]
    table.to_parquet(tmp_path / "labels.parquet", index=False)
    labels = table[[c for c in table.columns if "/" in c]].to_numpy(float)
    signal = labels @ rng.normal(size=(labels.shape[1], 8))
    settings = {"c_grid": [0.1, 1.0], "max_iter": 200, "bootstrap_resamples": 50}
    rows = []
    for model, noise in (("HL_p125_d2_e64", 0.1), ("random_p125_d2_e64", 10.0)):
        write_embeddings(tmp_path / f"{model}.h5", signal + noise * rng.normal(size=signal.shape), table["record_id"],
                         model)
        rows.append(ptbxl_benchmark_probe(model, tmp_path / f"{model}.h5", tmp_path / "labels.parquet",
                                          ["superdiagnostic", "form", "rhythm"], settings, tmp_path / f"{model}.parquet",
                                          seed=1))
    rows = pd.concat(rows)
    test = rows[rows["split"] == "test"].set_index(["model", "task"])
    # form has one class (NDT), carried by every record of the set: nothing to score, said so
    assert test.loc[("HL_p125_d2_e64", "form"), ["classes", "classes_scored"]].tolist() == [1, 0]
    assert np.isnan(test.loc[("HL_p125_d2_e64", "form"), "value"])
    # the informative encoder beats noise on the others
    assert test.loc[("HL_p125_d2_e64", "rhythm"), "classes_scored"] == 2
    scored = ["superdiagnostic", "rhythm"]
    assert (test.loc["HL_p125_d2_e64", "value"][scored] > 0.95).all()
    assert (test.loc["random_p125_d2_e64", "value"][scored] < test.loc["HL_p125_d2_e64", "value"][scored]).all()
    best = {"HL": {"model": "HL_p125_d2_e64", "patch": 125, "depth": 2, "width": 64}}
    write_benchmark_table(rows, best, load_peers(), ["superdiagnostic", "form", "rhythm"], tmp_path / "bench")
    long = pd.read_csv(tmp_path / "bench.csv")
    assert set(long.loc[long["source"] == "ours", "key"]) == {"HL", "random@HL"}
    md = (tmp_path / "bench.md").read_text()
    assert "| HL | linear probe |" in md and "ECGFounder" in md and "xresnet1d101" in md


def test_benchmark_fine_tuning_and_supervised_baselines(demo_shards, demo_model, tmp_path):
    """On the demo's standardized PTB-XL: the pretrained encoder fine-tuned by LP-FT (its start is
    the linear probe, so fold 9 does no worse than the probe job's), the ViT and the 1D-ResNet50
    trained from scratch, each one multi-label head over superdiagnostic; then the table's rows by
    mode beside the peers' fine-tuned and supervised figures."""
    import json

    import numpy as np

    from ecgfm.evaluate import embed, ptbxl_benchmark_finetune, ptbxl_benchmark_probe
    from ecgfm.ptbxl_tasks import benchmark_table
    from ecgfm.report import load_peers, write_benchmark_table
    manifest = pd.read_parquet(demo_shards / "manifest.parquet")
    folds = {"train": list(range(1, 9)), "validation": [9], "test": [10]}
    table = benchmark_table(manifest, read_statements(demo_shards.parent / "raw" / "scp_statements.csv"), folds,
                            ["superdiagnostic"])
    labels = tmp_path / "labels.parquet"
    table.to_parquet(labels, index=False)
    arch = json.loads((demo_model / "config.json").read_text())["architecture"]
    settings = {"batch_size": 16, "lr": 1e-3, "encoder_lr_scale": 0.1, "weight_decay": 0.05, "max_epochs": 1,
                "patience": 1, "head_init": "probe", "probe_c_grid": [0.1, 1.0], "probe_max_iter": 200,
                "bootstrap_resamples": 30}
    name = demo_model.name                                       # HL_p250_d1_e32
    embed(name, demo_model, None, demo_shards, labels, tmp_path / "emb.h5", seed=0)
    probe = ptbxl_benchmark_probe(name, tmp_path / "emb.h5", labels, ["superdiagnostic"],
                                  {"c_grid": [0.1, 1.0], "max_iter": 200, "bootstrap_resamples": 30}, tmp_path / "p.parquet",
                                  seed=0)
    vit, resnet = {"kind": "vit", "architecture": arch}, {"kind": "resnet1d", "architecture": {
        "layers": [1, 1, 1, 1], "width": 2, "kernel_size": 3, "stem_kernel": 7, "leads": 12}}
    rows = [probe]
    for model, spec, encoder in ((name, vit, demo_model), ("ViT_p250_d1_e32", vit, None), ("ResNet50", resnet, None)):
        rows.append(ptbxl_benchmark_finetune(model, spec, encoder, demo_shards, labels, ["superdiagnostic"], settings,
                                             tmp_path / f"{model}.parquet", seed=0))
    rows = pd.concat(rows, ignore_index=True)
    test = rows[rows["split"] == "test"].set_index(["model", "setting"])
    assert sorted(test.index) == sorted([(name, "linear_probe"), (name, "finetune"), ("ViT_p250_d1_e32", "supervised"),
                                         ("ResNet50", "supervised")])
    assert (test["classes_scored"] >= 2).all() and np.isfinite(test["value"]).all()
    assert ((test["ci_low"] <= test["value"]) & (test["value"] <= test["ci_high"])).all()
    assert test.loc[(name, "finetune"), "epochs"] == 2          # the probe's start (epoch -1) and one epoch
    assert test.loc[("ResNet50", "supervised"), "epochs"] == 1
    val = rows[rows["split"] == "validation"].set_index(["model", "setting"])["value"]
    assert val[(name, "finetune")] >= val[(name, "linear_probe")] - 1e-3
    best = {"HL": {"model": name, "patch": 250, "depth": 1, "width": 32}}
    write_benchmark_table(rows, best, load_peers(), ["superdiagnostic"], tmp_path / "bench")
    long = pd.read_csv(tmp_path / "bench.csv")
    ours = long[long["source"] == "ours"]
    assert list(zip(ours["key"], ours["mode"])) == [("HL", "linear probe"), ("HL", "fine-tuned"),
                                                    ("ResNet50", "supervised from scratch"),
                                                    ("ViT@HL", "supervised from scratch")]
    md = (tmp_path / "bench.md").read_text()
    assert "| HL | fine-tuned |" in md and "| ResNet50 | supervised from scratch |" in md
    assert "| resnet1d_wang | supervised from scratch | 0.930 |" in md and "| ECGFounder | fine-tuned | 0.935" in md


def test_peers_figures_are_those_the_sources_publish():
    """The superdiagnostic figures quoted in the issue, as read in the sources (peers.csv)."""
    from ecgfm.report import load_peers
    peers = load_peers()
    superd = peers[peers["task_set"] == "superdiagnostic"].set_index(["model", "mode"])["value"].round(3)
    assert {m: (superd[m, "linear_probe"], superd[m, "finetune"]) for m in
            ("ECGFounder", "ECG-JEPA", "ST-MEM", "MERL", "HuBERT-ECG", "ECG-FM")} == {
        "ECGFounder": (0.924, 0.935), "ECG-JEPA": (0.911, 0.921), "ST-MEM": (0.896, 0.901), "MERL": (0.887, 0.930),
        "HuBERT-ECG": (0.877, 0.908), "ECG-FM": (0.873, 0.916)}
    assert superd["xresnet1d101", "supervised"] == 0.928 and superd["resnet1d_wang", "supervised"] == 0.930
    assert peers["source"].str.len().gt(0).all() and peers["protocol"].str.len().gt(0).all()
    assert set(peers["task_set"]) == set(TASK_SETS)
