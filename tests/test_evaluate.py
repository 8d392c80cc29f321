"""Evaluation: metrics, subsampling, splits, probes, fine-tuning, risk decomposition, selection."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from ecgfm.labels import check_patient_disjoint, labeled_table
from ecgfm.metrics import auprc, auroc, bootstrap_ci, weighted_auprc, weighted_auroc
from ecgfm.probe import fit_probe
from ecgfm.risk import COMPONENTS, decompose, heldout_patients
from ecgfm.selection import best_architectures
from ecgfm.subsample import case_ratio_draw, stratified_fraction

TASKS = ["MI", "STTC", "CD", "HYP"]
REPO = Path(__file__).resolve().parents[1]
FOLDS = {"train": [1, 2, 3, 4, 5, 6, 7, 8], "validation": [9], "test": [10]}


# --- metrics ---------------------------------------------------------------------------------------
def test_metrics_hand_case():
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4), (0.8>0.1), (0.4=0.4 -> 1/2), (0.4>0.1)
    y, s = np.array([1, 1, 0, 0]), np.array([0.8, 0.4, 0.4, 0.1])
    assert auroc(y, s) == pytest.approx(3.5 / 4)
    # thresholds 0.8: P=1, R=1/2; 0.4: P=2/3, R=1 -> AP = 1/2 * 1 + 1/2 * 2/3
    assert auprc(y, s) == pytest.approx(0.5 + 1 / 3)
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert auprc(y, s) == pytest.approx(average_precision_score(y, s))


def test_weighted_metrics_equal_sklearn_on_repeated_records():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        n = int(rng.integers(2, 30))
        y, s, w = rng.integers(0, 2, n), rng.integers(0, 6, n) / 5, rng.integers(0, 4, n)
        yy, ss = np.repeat(y, w), np.repeat(s, w)
        if len(set(yy)) < 2:
            assert np.isnan(weighted_auroc(y, s, w)[0])
            continue
        assert weighted_auroc(y, s, w)[0] == pytest.approx(roc_auc_score(yy, ss), abs=1e-12)
        assert weighted_auprc(y, s, w)[0] == pytest.approx(average_precision_score(yy, ss), abs=1e-12)
        checked += 1
    assert checked > 100


def test_bootstrap_ci_is_seeded_and_brackets_the_value():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = y + rng.normal(0, 1.0, 500)
    a, b, c = bootstrap_ci(y, s, 300, seed=3), bootstrap_ci(y, s, 300, seed=3), bootstrap_ci(y, s, 300, seed=4)
    assert a == b and a != c
    for metric, (value, low, high) in a.items():
        assert low < value < high
        assert high - low < 0.2
    assert a["AUROC"][0] == pytest.approx(roc_auc_score(y, s))


# --- subsampling -------------------------------------------------------------------------------------
def test_case_ratio_draw_exact_counts_and_seeded():
    rng = np.random.default_rng(0)
    positive = rng.random(20000) < 0.25
    for ratio, n_pos in ((0.05, 350), (0.02, 140), (0.01, 70)):
        idx = case_ratio_draw(positive, 7000, ratio, seed=11)
        assert len(idx) == 7000 == len(np.unique(idx))
        assert positive[idx].sum() == n_pos
        assert np.array_equal(idx, case_ratio_draw(positive, 7000, ratio, seed=11))
        assert not np.array_equal(idx, case_ratio_draw(positive, 7000, ratio, seed=12))
    with pytest.raises(ValueError, match="needs 700 positives"):
        case_ratio_draw(positive[:2000], 7000, 0.1, seed=0)


def test_stratified_fraction_keeps_every_case_ratio():
    rng = np.random.default_rng(0)
    labels = rng.random((19000, 4)) < [0.25, 0.24, 0.22, 0.12]
    for fraction in (0.5, 0.25, 0.1):
        idx = stratified_fraction(labels, fraction, seed=5)
        assert len(idx) == round(fraction * len(labels)) == len(np.unique(idx))
        # each stratum gives floor or ceil of its share, so each task's count is within 16 of exact
        assert np.all(np.abs(labels[idx].sum(0) - fraction * labels.sum(0)) <= 16)
        assert np.array_equal(idx, stratified_fraction(labels, fraction, seed=5))
        assert not np.array_equal(idx, stratified_fraction(labels, fraction, seed=6))


# --- labels and splits ----------------------------------------------------------------------------------
def test_patient_in_two_splits_is_refused():
    table = pd.DataFrame({"patient_id": ["a", "a", "b"], "split": ["train", "test", "train"]})
    with pytest.raises(ValueError, match="1 patients have records in more than one split"):
        check_patient_disjoint(table)


def test_real_ptbxl_splits_are_patient_disjoint(ptbxl_real):
    db = pd.read_csv(ptbxl_real / "ptbxl_database.csv")
    manifest = pd.DataFrame({"record_id": db["ecg_id"].astype(str), "patient_id": db["patient_id"].astype(str),
                             "strat_fold": db["strat_fold"], "scp_codes": db["scp_codes"]})
    table = labeled_table(manifest, pd.read_csv(ptbxl_real / "scp_statements.csv"), FOLDS, TASKS)
    patients = {s: set(part["patient_id"]) for s, part in table.groupby("split")}
    assert not patients["train"] & patients["validation"]
    assert not patients["train"] & patients["test"]
    assert not patients["validation"] & patients["test"]
    # the standard benchmark's population: every record of the database with a superclass
    assert len(table) == 21430
    assert table["split"].value_counts().to_dict() == {
        "train": int((table["strat_fold"] <= 8).sum()), "validation": int((table["strat_fold"] == 9).sum()),
        "test": int((table["strat_fold"] == 10).sum())}
    assert table[TASKS].sum().to_dict() == {"MI": 5486, "STTC": 5250, "CD": 4907, "HYP": 2655}


# --- probes, selection, risk --------------------------------------------------------------------------------
def _features(n, seed, signal=1.0):
    rng = np.random.default_rng(seed)
    y = rng.random((n, 2)) < [0.3, 0.2]
    x = rng.normal(size=(n, 8))
    x[:, :2] += signal * y
    return x, y


def test_probe_selection_never_sees_the_test_fold():
    x, y = _features(600, 0)
    split = np.array(["train"] * 400 + ["validation"] * 100 + ["test"] * 100)
    tr, va = split == "train", split == "validation"
    a = fit_probe(x[tr], y[tr], x[va], y[va], [0.001, 0.01, 0.1, 1.0])
    assert a.validation_auroc[0] > 0.7
    # whatever the test fold holds, nothing chosen or fitted changes: it is not an input
    x2, y2 = x.copy(), y.copy()
    x2[~(tr | va)] = 1e3
    y2[~(tr | va)] = ~y2[~(tr | va)]
    b = fit_probe(x2[tr], y2[tr], x2[va], y2[va], [0.001, 0.01, 0.1, 1.0])
    assert a.c == b.c and np.array_equal(a.scores(x[va]), b.scores(x[va]))


def _risk_setup(n=900, seed=1):
    x_ssl, y = _features(n, seed, signal=0.8)
    x_sup = x_ssl + np.random.default_rng(seed + 1).normal(0, 0.1, x_ssl.shape)
    folds = np.arange(n) % 10 + 1
    split = np.where(folds <= 8, "train", np.where(folds == 9, "validation", "test"))
    return x_sup, x_ssl, y, folds, split


def test_risk_components_add_up_to_the_test_risk():
    x_sup, x_ssl, y, folds, split = _risk_setup()
    tr, va, te = split == "train", split == "validation", split == "test"
    patients = np.arange(900) // 2
    held = np.zeros(900, bool)
    held[tr] = heldout_patients(patients[tr], te.sum(), seed=0)
    assert te.sum() <= held.sum() <= te.sum() + 1 and not np.any(np.isin(patients[held], patients[tr & ~held]))
    c = [0.01, 0.1, 1.0]
    parts = decompose(x_sup, x_ssl, y, split, held, c, train_c_grid=[0.01, 0.1, 1.0, 100.0, 1e4])
    test_probe = fit_probe(x_ssl[tr], y[tr], x_ssl[va], y[va], c)
    for k, p in enumerate(parts):
        assert set(p) == set(COMPONENTS)
        assert sum(p[c] for c in COMPONENTS[:4]) == pytest.approx(p["total"], abs=1e-12)
        assert p["total"] == pytest.approx(1 - auroc(y[te, k], test_probe.scores(x_ssl[te])[:, k]))
        assert 0 < p["approximation"] < 0.5
        # the train-train probe is the best on the training data: no worse there than the fold-9 probe
        train_risk_of_test_probe = 1 - auroc(y[tr, k], test_probe.scores(x_ssl[tr])[:, k])
        assert p["approximation"] + p["usability"] <= train_risk_of_test_probe + 1e-12


def test_train_train_probes_are_tuned_on_the_training_risk():
    from ecgfm.risk import best_training_probe
    x_sup, x_ssl, y, folds, split = _risk_setup(n=400, seed=3)
    tr, va = split == "train", split == "validation"
    x = np.hstack([x_ssl, np.random.default_rng(0).normal(size=(400, 40))])   # room to overfit
    best = best_training_probe(x[tr], y[tr], [0.001, 0.01, 1.0, 1e4])
    fold9 = fit_probe(x[tr], y[tr], x[va], y[va], [0.001, 0.01, 1.0, 1e4])
    for k in range(2):
        risk = {name: 1 - auroc(y[tr, k], p.scores(x[tr])[:, k]) for name, p in (("best", best), ("fold9", fold9))}
        assert risk["best"] <= risk["fold9"]
    assert max(best.c) >= 1.0                       # weak regularization wins on the training risk


def test_risk_intervals_bracket_their_components_and_are_seeded():
    x_sup, x_ssl, y, folds, split = _risk_setup(n=1200, seed=5)
    tr = split == "train"
    held = np.zeros(1200, bool)
    held[tr] = heldout_patients(np.arange(1200)[tr] // 2, (split == "test").sum(), seed=0, labels=y[tr])
    args = (x_sup, x_ssl, y, split, held, [0.01, 0.1, 1.0])
    a = decompose(*args, resamples=200, seed=7)
    b = decompose(*args, resamples=200, seed=7)
    c = decompose(*args, resamples=200, seed=8)
    assert a == b and a != c
    for task in a:
        for name in COMPONENTS:
            low, high = task[f"{name}_ci"]
            assert low <= task[name] <= high and high - low > 0, name
        # a resample keeps the identity, so the total's interval is that of R_F alone: narrower than
        # the sum of the parts' widths
        width = {n: task[f"{n}_ci"][1] - task[f"{n}_ci"][0] for n in COMPONENTS}
        assert width["total"] < sum(width[n] for n in COMPONENTS[:4])


def test_heldout_patients_are_stratified_by_label():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(2000), 2)
    y = np.repeat(rng.random((2000, 2)) < [0.3, 0.05], 2, axis=0)
    held = heldout_patients(patients, 400, seed=1, labels=y)
    assert 400 <= held.sum() <= 412
    assert np.abs(y[held].mean(axis=0) - y.mean(axis=0)).max() < 0.01
    assert not np.any(np.isin(patients[held], patients[~held]))           # whole patients


def test_risk_over_folds_takes_each_training_fold_as_the_heldout_set():
    from ecgfm.risk import decompose_over_folds
    x_sup, x_ssl, y, folds, split = _risk_setup()
    c = [0.01, 0.1, 1.0]
    per_fold = decompose_over_folds(x_sup, x_ssl, y, split, folds, c)
    assert sorted(per_fold) == list(range(1, 9))
    tr = split == "train"
    for fold, tasks in per_fold.items():
        direct = decompose(x_sup, x_ssl, y, split, tr & (folds == fold), c)
        for p, q in zip(tasks, direct):
            assert p == pytest.approx({name: q[name] for name in COMPONENTS})
    for name in ("approximation", "usability", "total"):
        assert len({round(tasks[0][name], 12) for tasks in per_fold.values()}) == 1
    assert len({round(tasks[0]["probe_generalization"], 12) for tasks in per_fold.values()}) > 1


def _probe_rows(method, values):
    rows = []
    for (patch, depth, width), aurocs in values.items():
        for task, v in zip(TASKS, aurocs):
            rows.append({"protocol": "linear_probe", "split": "validation", "metric": "AUROC", "method": method,
                         "model": f"{method}_p{patch}_d{depth}_e{width}", "patch": patch, "depth": depth,
                         "width": width, "task": task, "value": v})
    return rows


def test_best_architecture_rule():
    rows = _probe_rows("HL", {
        (60, 2, 512): [0.80, 0.81, 0.82, 0.83],
        (60, 4, 512): [0.70, 0.90, 0.71, 0.72],
        (250, 2, 512): [0.78, 0.79, 0.80, 0.81],
        (250, 4, 512): [0.60, 0.95, 0.61, 0.62],
    })
    # patch 60: its boxes' medians (MI 0.75, STTC 0.855, CD 0.765, HYP 0.775) average 0.786 >
    # patch 250's 0.745; depth 2 beats 4 likewise
    assert best_architectures(pd.DataFrame(rows))["HL"] == {"patch": 60, "depth": 2, "width": 512,
                                                            "model": "HL_p60_d2_e512"}
    # test-fold rows, however good, change nothing
    leak = pd.DataFrame(_probe_rows("HL", {(250, 4, 512): [1.0, 1.0, 1.0, 1.0]})).assign(split="test")
    assert best_architectures(pd.concat([pd.DataFrame(rows), leak]))["HL"]["model"] == "HL_p60_d2_e512"
    # equal medians (0.8125 in every box): the smaller whiskers win (values exact in binary)
    tie = _probe_rows("CL", {(60, 2, 256): [0.75] * 4, (60, 4, 256): [0.875] * 4,
                             (125, 2, 256): [0.78125] * 4, (125, 4, 256): [0.84375] * 4})
    assert best_architectures(pd.DataFrame(tie))["CL"]["patch"] == 125
    # the mean over tasks of the boxes' medians, not the median of all AUROCs pooled: patch 60
    # wins one task by a lot (mean 0.8025), 125 the three others by a little (pooled median 0.76 > 0.74)
    split = _probe_rows("GL", {(60, 2, 256): [0.99, 0.74, 0.74, 0.74], (125, 2, 256): [0.76] * 4})
    assert best_architectures(pd.DataFrame(split), "pooled_median")["GL"]["patch"] == 125
    assert best_architectures(pd.DataFrame(split))["GL"]["patch"] == 60


def _papers_table8():
    """The paper's Table 8 (AUROC of every linear probe; OOM models as NaN) as validation rows."""
    from ecgfm.report import load_published
    pub = load_published()
    cells = pub[(pub.table.isin([8, 9])) & (pub.metric.isin(["AUROC", "AUPRC"]))].rename(columns={"key": "method"})
    cells = cells.astype({"patch": int, "depth": int, "width": int})
    return cells.assign(protocol="linear_probe", split="validation", model=[
        f"{m}_p{p}_d{d}_e{w}" for m, p, d, w in zip(cells.method, cells.patch, cells.depth, cells.width)])


def test_selection_rule_gives_the_papers_architectures_from_its_own_table8():
    """Section 4.1 applied to the paper's own Table 8 must give the paper's choices (section 4.1,
    Tables 1 and 3): CL (250, 2, 1024), GL (60, 2, 512), HL (60, 2, 512). Only our rule does; the
    other readings' choices are the ones docs/evaluation.md lists."""
    from ecgfm.selection import choose
    rows = _papers_table8()
    arch = lambda best: {m: (c["patch"], c["depth"], c["width"]) for m, c in best.items()}  # noqa: E731
    assert arch(best_architectures(rows)) == {"CL": (250, 2, 1024), "GL": (60, 2, 512), "HL": (60, 2, 512)}
    auroc = rows[rows.metric == "AUROC"]
    assert arch(choose(auroc, "pooled_median")) == {"CL": (250, 8, 1024), "GL": (60, 8, 1024), "HL": (60, 2, 512)}
    assert arch(choose(auroc, "task_vote")) == {"CL": (250, 8, 1024), "GL": (60, 2, 1024), "HL": (60, 2, 512)}
    assert arch(best_architectures(rows, "criteria_median")) == \
        {"CL": (250, 8, 512), "GL": (60, 8, 512), "HL": (60, 8, 512)}
    # CL (250, 8, 1024) is one of the paper's OOM models: the pipeline refuses a choice that did not train
    with pytest.raises(ValueError, match="CL_p250_d8_e1024, which has no validation result"):
        best_architectures(rows, "pooled_median")


def test_selection_paper_pins_the_papers_architectures():
    from ecgfm.config import load_config, pretrain_grid
    from ecgfm.selection import pinned_architectures
    config = load_config(REPO / "config.yaml")
    assert config["evaluation"]["selection"] == "task_medians"
    pinned = pinned_architectures(config["evaluation"]["paper_architectures"], pretrain_grid(config))
    assert {m: c["model"] for m, c in pinned.items()} == {"CL": "CL_p250_d2_e1024", "GL": "GL_p60_d2_e512",
                                                          "HL": "HL_p60_d2_e512"}
    with pytest.raises(ValueError, match="CL_p250_d2_e1024 is not one of the pretrained models"):
        pinned_architectures({"CL": [250, 2, 1024]}, ["CL_p125_d2_e1024"])
    import copy
    from ecgfm.config import ConfigError, validate
    for key, value in (("selection", "median"), ("paper_architectures", {"CL": [250, 2]})):
        bad = copy.deepcopy(config)
        bad["evaluation"][key] = value
        with pytest.raises(ConfigError, match=f"evaluation.{key}"):
            validate(bad)


# --- models -----------------------------------------------------------------------------------------------
def test_resnet50_1d_layout():
    from ecgfm.resnet1d import Bottleneck, ResNet1d, ResNetArchitecture
    model = ResNet1d(ResNetArchitecture())
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16                            # 3 + 4 + 6 + 3: 48 conv layers + stem + fc = 50
    assert model.embed(torch.zeros(2, 12, 2500)).shape == (2, 2048)
    assert 15e6 < sum(p.numel() for p in model.parameters()) < 25e6


def test_finetuning_learns_and_keeps_the_best_validation_epoch():
    from ecgfm.finetune import new_classifier, predict_logits, train_classifier
    rng = np.random.default_rng(0)
    y = rng.random((300, 2)) < 0.4
    x = rng.normal(0, 0.1, (300, 12, 2500)).astype(np.float32)
    x[:, 0, :] += y[:, :1] * 1.0            # task 0: lead I offset; task 1: lead V1 offset
    x[:, 6, :] += y[:, 1:] * 1.0
    spec = {"kind": "vit", "architecture": {"patch": 250, "depth": 1, "width": 32, "head_dim": 16,
                                            "decoder_width": 16, "decoder_depth": 1, "projection_dim": 8}}
    settings = {"batch_size": 32, "lr": 3e-3, "encoder_lr_scale": 1.0, "weight_decay": 0.0, "max_epochs": 4,
                "patience": 2}
    model = new_classifier(spec, 2)
    history = train_classifier(model, x[:200], y[:200], x[200:250], y[200:250], settings, seed=0,
                               pretrained=False, log=lambda *_: None)
    best = max(h["val_auroc"] for h in history)
    assert sum(h["best"] for h in history) >= 1 and best > 0.95
    scores = predict_logits(model, x[250:])
    assert np.mean([auroc(y[250:, k], scores[:, k]) for k in range(2)]) > 0.95
    # the kept weights are the best epoch's: validation AUROC now equals the best one
    val = predict_logits(model, x[200:250])
    assert np.mean([auroc(y[200:250, k], val[:, k]) for k in range(2)]) == pytest.approx(best)


def test_saved_classifier_is_portable(tmp_path):
    from ecgfm import load_encoder
    from ecgfm.finetune import load_classifier, new_classifier, predict_logits, save_classifier
    spec = {"kind": "vit", "architecture": {"patch": 125, "depth": 1, "width": 32, "head_dim": 16,
                                            "decoder_width": 16, "decoder_depth": 1, "projection_dim": 8}}
    torch.manual_seed(0)
    model = new_classifier(spec, 4)
    save_classifier(model, tmp_path, {**spec, "tasks": TASKS})
    loaded, config = load_classifier(tmp_path)
    x = np.random.default_rng(0).normal(size=(3, 12, 2500)).astype(np.float32)
    assert np.array_equal(predict_logits(model.eval(), x), predict_logits(loaded, x))
    assert config["tasks"] == TASKS
    encoder = load_encoder(tmp_path)                    # the ViT encoder alone, as pretraining ships it
    np.testing.assert_array_equal(encoder.embed(x), model.backbone.eval().embed(torch.from_numpy(x)).detach().numpy())


# --- the stage functions on a demo PTB-XL --------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_eval(tmp_path_factory):
    from conftest import make_demo_ptbxl
    root = tmp_path_factory.mktemp("demo-eval")
    make_demo_ptbxl(root, n_patients=320, seed=7, max_ecgs_per_patient=2, shard_size=128)
    table = labeled_table(pd.read_parquet(root / "std" / "manifest.parquet"),
                          pd.read_csv(root / "raw" / "scp_statements.csv"), FOLDS, TASKS)
    table.to_parquet(root / "labels.parquet", index=False)
    return root


def test_finetune_stage_is_blind_to_the_test_fold(demo_eval, tmp_path):
    """Two runs whose test fold differs (labels flipped) choose the same epoch, end with the same
    weights and the same validation rows: fold 10 influences no selection."""
    from ecgfm.evaluate import finetune
    from ecgfm.config import classifier_spec, load_config, training_settings
    from conftest import REPO
    config = load_config(REPO / "config.yaml", REPO / "profiles" / "demo" / "demo-config.yaml")
    spec = classifier_spec(config, "ViT_p250_d1_e32")
    spec["architecture"].update(head_dim=16)
    settings = {**training_settings(config, supervised=True), "max_epochs": 2, "bootstrap_resamples": 50}
    table = pd.read_parquet(demo_eval / "labels.parquet")
    flipped = table.copy()
    test = flipped["split"] == "test"
    flipped.loc[test, TASKS] = ~flipped.loc[test, TASKS].to_numpy(bool)
    flipped.to_parquet(tmp_path / "flipped.parquet", index=False)
    runs = {}
    for name, labels in (("a", demo_eval / "labels.parquet"), ("b", tmp_path / "flipped.parquet")):
        rows = finetune("ViT_p250_d1_e32", spec, None, demo_eval / "std", labels, TASKS, settings,
                        tmp_path / name, seed=0)
        runs[name] = rows
    a, b = runs["a"], runs["b"]
    val = a["split"] == "validation"
    pd.testing.assert_frame_equal(a[val].reset_index(drop=True), b[val].reset_index(drop=True))
    ta = a[(a["split"] == "test") & (a["metric"] == "AUROC")]["value"].to_numpy()
    tb = b[(b["split"] == "test") & (b["metric"] == "AUROC")]["value"].to_numpy()
    assert np.allclose(ta, 1 - tb)                     # same scores, flipped labels
    ca = json.loads((tmp_path / "a" / "config.json").read_text())["training"]
    cb = json.loads((tmp_path / "b" / "config.json").read_text())["training"]
    assert ca["best_epoch"] == cb["best_epoch"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_lp_ft_head_starts_as_the_linear_probe_of_the_frozen_encoder():
    """head_init probe: before any step the classifier scores like the probe fit on its frozen
    features (same C choice), and that start competes as epoch -1 for the best validation AUROC."""
    from ecgfm.finetune import features_of, init_head_from_probe, new_classifier, predict_logits, train_classifier
    rng = np.random.default_rng(1)
    y = rng.random((240, 2)) < 0.4
    x = rng.normal(0, 0.1, (240, 12, 2500)).astype(np.float32)
    x[:, 0, :] += y[:, :1] * 0.3
    spec = {"kind": "vit", "architecture": {"patch": 250, "depth": 1, "width": 16, "head_dim": 8,
                                            "decoder_width": 8, "decoder_depth": 1, "projection_dim": 4}}
    settings = {"batch_size": 32, "lr": 1e-3, "encoder_lr_scale": 0.1, "weight_decay": 0.0, "max_epochs": 2,
                "patience": 1, "head_init": "probe", "probe_c_grid": [0.01, 1.0], "probe_max_iter": 500}
    model = new_classifier(spec, 2, seed=0)
    tr, va = slice(0, 160), slice(160, 240)
    init_head_from_probe(model, x[tr], y[tr], x[va], y[va], settings, torch.device("cpu"))
    f_tr, f_va = (features_of(model, x[s], 64, torch.device("cpu")) for s in (tr, va))
    probe = fit_probe(f_tr, y[tr], f_va, y[va], [0.01, 1.0], 500)
    np.testing.assert_allclose(predict_logits(model, x[va]), probe.scores(f_va), rtol=1e-3, atol=1e-3)
    model = new_classifier(spec, 2, seed=0)
    history = train_classifier(model, x[tr], y[tr], x[va], y[va], settings, seed=0, pretrained=True,
                               log=lambda *_: None)
    assert history[0]["epoch"] == -1
    assert history[0]["val_auroc"] == pytest.approx(np.mean(probe.validation_auroc))
    assert max(h["val_auroc"] for h in history) >= history[0]["val_auroc"]


def test_training_on_the_shards_float16_gives_the_float32_arrays_weights_and_scores():
    """The PTB-XL jobs hand the trainer the records as the shards store them (float16, half the
    memory): LP-FT, from the probe's head through early stopping to the scores, must end exactly
    where the same records converted to float32 end."""
    from ecgfm.finetune import new_classifier, predict_logits, train_classifier
    rng = np.random.default_rng(2)
    y = rng.random((200, 2)) < 0.4
    x16 = rng.normal(0, 0.2, (200, 12, 2500)).astype(np.float16)
    x16[:, 0, :] += (y[:, :1] * 0.3).astype(np.float16)
    spec = {"kind": "vit", "architecture": {"patch": 250, "depth": 1, "width": 16, "head_dim": 8,
                                            "decoder_width": 8, "decoder_depth": 1, "projection_dim": 4}}
    settings = {"batch_size": 32, "lr": 1e-3, "encoder_lr_scale": 0.1, "weight_decay": 0.0, "max_epochs": 2,
                "patience": 1, "head_init": "probe", "probe_c_grid": [0.01, 1.0], "probe_max_iter": 500}
    runs = []
    for x in (x16, x16.astype(np.float32)):
        model = new_classifier(spec, 2, seed=0)
        history = train_classifier(model, x[:140], y[:140], x[140:170], y[140:170], settings, seed=0,
                                   pretrained=True, log=lambda *_: None)
        runs.append((model.state_dict(), [h["val_auroc"] for h in history], predict_logits(model, x[170:])))
    (w16, h16, s16), (w32, h32, s32) = runs
    assert h16 == h32 and np.array_equal(s16, s32)
    assert all(torch.equal(w16[k], w32[k]) for k in w32)


def test_read_records_as_stored_and_as_float32(demo_shards):
    from ecgfm.evaluate import read_records
    table = pd.DataFrame({"row": [5, 0, 3]})            # labels.parquet's manifest positions
    stored, converted = read_records(demo_shards, table, dtype=None), read_records(demo_shards, table)
    assert stored.dtype == np.float16 and converted.dtype == np.float32 and stored.shape == converted.shape
    assert np.array_equal(stored.astype(np.float32), converted)


def test_paired_auroc_difference():
    from ecgfm.metrics import paired_auroc_difference
    rng = np.random.default_rng(2)
    y = rng.random((400, 2)) < 0.3
    a = y + rng.normal(0, 0.8, y.shape)
    b = y + rng.normal(0, 1.6, y.shape)
    value, low, high = paired_auroc_difference(y, a, b, resamples=300, seed=0)
    assert value == pytest.approx(np.mean([auroc(y[:, k], a[:, k]) - auroc(y[:, k], b[:, k]) for k in range(2)]))
    assert 0 < low < value < high
    assert paired_auroc_difference(y, a, b, 300, 0) == (value, low, high)       # seeded
    same = paired_auroc_difference(y, a, a, 100, 0)
    assert same == (0.0, 0.0, 0.0)                                              # paired: no noise when equal
    assert np.isnan(paired_auroc_difference(y, a, b, 0, 0)[1])
