"""Tables and figures (ecgfm/report.py) against hand-made result rows, and the paper's numbers."""
import numpy as np
import pandas as pd
import pytest

from ecgfm import report
from ecgfm.results import COLUMNS, describe_model

TASKS = ["MI", "STTC", "CD", "HYP"]


def _rows(model, protocol, values, *, setting="full", seed=0, split="test", metric_values=None):
    """Result rows of one model: AUROC = values[task], AUPRC = values[task] / 2."""
    rows = []
    for task, v in values.items():
        for metric, value in (metric_values or {"AUROC": v, "AUPRC": v / 2}).items():
            value = value[task] if isinstance(value, dict) else value
            rows.append({**describe_model(model), "protocol": protocol, "task": task, "setting": setting,
                         "seed": seed, "split": split, "metric": metric, "value": value,
                         "ci_low": value - 0.01, "ci_high": value + 0.01, "n_train": 100})
    return rows


def _frame(rows):
    return pd.DataFrame(rows, columns=COLUMNS)


AUC = {"MI": 0.8, "STTC": 0.9, "CD": 0.7, "HYP": 0.6}
BEST = {"HL": {"patch": 60, "depth": 2, "width": 512, "model": "HL_p60_d2_e512"}}


def test_published_numbers_are_the_papers():
    pub = report.load_published()

    def cell(table, key, task, metric, **match):
        hit = (pub.table == table) & (pub.key == key) & (pub.task == task) & (pub.metric == metric)
        for column, value in match.items():
            hit &= pub[column].eq(value).fillna(False)
        return pub[hit]

    # hand-picked cells, read off the paper
    assert cell(1, "HL", "all", "criteria")["value"].item() == 5.2047
    assert cell(1, "GL", "STTC", "AUROC")["value"].item() == 0.8375
    assert cell(2, "CL", "STTC", "encoder_generalization")["value"].item() == -0.0920
    assert cell(2, "HL", "average", "total")["value"].item() == 0.2289
    assert cell(3, "ResNet50", "HYP", "AUPRC")["value"].item() == 0.6835
    assert cell(4, "supervised", "all", "criteria", setting="ratio=0.01")["value"].item() == 6.407
    assert cell(5, "CL", "STTC", "AUROC", setting="usage=0.1")["value"].item() == 0.9237
    oom = cell(8, "HL", "MI", "AUROC", patch=250, depth=8, width=256)
    assert oom["note"].item() == "OOM" and np.isnan(oom["value"].item())
    assert cell(11, "GL", "HYP", "AUPRC", patch=125, depth=4, width=512)["value"].item() == 0.7042
    assert pub.groupby("table").size().to_dict() == {1: 54, 2: 75, 3: 63, 4: 120, 5: 120,
                                                      8: 405, 9: 405, 10: 405, 11: 405}
    assert cell(5, "supervised", "all", "criteria_drop", setting="usage=0.5")["value"].item() == 0.0135


def test_published_criteria_add_up():
    """The paper's criteria are the sums of their 8 cells, up to the rounding of 8 four-decimal
    cells (0.0004): a check on the transcription that names the paper's own two slips. Table 1's
    CL row prints MI AUROC 0.7238 and criteria 4.8867; its cells add to 4.8822, and Table 8 has
    0.7283 for the same model (CL 250, 2, 1024), with which they add to 4.8867: the slip is the MI
    cell (two digits swapped). Table 3's supervised ViT at (250, 2, 1024): cells add to 6.9705,
    printed 6.9715 (section 4.3's text uses 6.9715, and so do we)."""
    pub = report.load_published()
    slips = {1: {("CL", 250, 2, 1024, "full"): 4.8822}, 3: {("ViT@CL", 250, 2, 1024, "full"): 6.9705}}
    for table in (1, 3, 4, 5):
        rows = pub[pub.table == table].fillna({"patch": 0, "depth": 0, "width": 0})
        keys = ["key", "patch", "depth", "width", "setting"]
        sums = rows[rows.metric.isin(["AUROC", "AUPRC"])].groupby(keys)["value"].sum()
        crit = rows[rows.metric == "criteria"].set_index(keys)["value"]
        off = (sums - crit).abs()
        assert set(off[off > 0.0004 + 1e-9].index) == set(slips.get(table, {})), table
        for key, total in slips.get(table, {}).items():
            assert sums[key] == pytest.approx(total)
    t8 = pub[(pub.table == 8) & (pub.key == "CL") & (pub.patch == 250) & (pub.depth == 2) & (pub.width == 1024)]
    assert t8[t8.task == "MI"]["value"].item() == 0.7283
    assert t8[t8.metric == "criteria"]["value"].item() == 4.8867
    t1 = pub[(pub.table == 1) & (pub.key == "CL")]
    assert t1[t1.metric.isin(["AUROC", "AUPRC"])]["value"].sum() - 0.7238 + 0.7283 == pytest.approx(4.8867)
    for auroc, auprc in ((8, 9), (10, 11)):
        cells = pub[pub.table.isin([auroc, auprc]) & (pub.metric != "criteria")]
        sums = cells.groupby(["key", "patch", "depth", "width"])["value"].sum(min_count=8)
        crit = pub[(pub.table == auroc) & (pub.metric == "criteria")].set_index(["key", "patch", "depth", "width"])
        assert ((sums - crit["value"]).dropna().abs() <= 0.0004 + 1e-9).all()
        # the paper reports 8 models, not 8 cells, out of memory: CL x3, HL x5
        assert sums.isna().sum() == crit["value"].isna().sum() == 8


def test_the_papers_drops_are_against_each_models_full_data_criteria():
    """Section 4.3's 24 drops, recomputed by our code from the paper's own Tables 3-5: each
    method's against its Table 3 row, the supervised baseline's against the ViT at (250, 2, 1024),
    6.9715 (CL's architecture: evaluation.supervised.reference_method CL), e.g. 2.52%, 1.35%,
    4.87% and 6.7%. Against the ViT at HL's architecture (6.9501) the first would be 2.22%."""
    pub = report.load_published()
    t3 = pub[(pub.table == 3) & (pub.metric == "criteria")].set_index("key")["value"]
    full = {"CL": t3["CL"], "GL": t3["GL"], "HL": t3["HL"], "supervised": t3["ViT@CL"]}
    for table in (4, 5):
        rows = pub[pub.table == table]
        ours = report.criteria_drops(rows[rows.metric == "criteria"], full).set_index(["key", "setting"])["value"]
        stated = rows[rows.metric == report.DROP].set_index(["key", "setting"])["value"]
        assert len(stated) == 12 and set(stated.index) == set(ours.index)
        for key, value in stated.items():
            digits = len(f"{100 * value:g}".partition(".")[2])           # 2.52 -> 2, 6.7 -> 1
            assert round(100 * ours[key], digits) == pytest.approx(100 * value), (table, key)
    sl = pub[(pub.table == 4) & (pub.key == "supervised") & (pub.metric == "criteria")]
    at_hl = report.criteria_drops(sl, {"supervised": t3["ViT@HL"]}).set_index("setting")["value"]
    assert round(100 * at_hl["ratio=0.05"], 2) == 2.22


def test_summary_averages_seeds_and_adds_criteria():
    rows = _frame(_rows("HL_p60_d2_e512", "case_ratio", AUC, setting="ratio=0.05", seed=0)
                  + _rows("HL_p60_d2_e512", "case_ratio", {k: v - 0.1 for k, v in AUC.items()},
                          setting="ratio=0.05", seed=1)
                  + _rows("HL_p60_d2_e512", "case_ratio", {k: 0.5 for k in AUC}, setting="ratio=0.05",
                          split="validation"))
    cells = report.summarize(rows)
    mi = cells[(cells.task == "MI") & (cells.metric == "AUROC")].iloc[0]
    assert mi["value"] == pytest.approx(0.75) and mi["n_seeds"] == 2
    assert mi["sd"] == pytest.approx(np.std([0.8, 0.7], ddof=1))
    assert np.isnan(mi["ci_low"])                          # no CI for a mean over seeds
    crit = cells[cells.metric == "criteria"]["value"].item()
    # AUROC mean over tasks: (0.8+0.9+0.7+0.6)/4 - 0.05; AUPRC half of it; 4 tasks each
    assert crit == pytest.approx(sum(AUC.values()) * 1.5 - 0.1 * 4 * 1.5 / 2)


def test_criteria_needs_all_eight_cells():
    rows = _frame(_rows("HL_p60_d2_e512", "linear_probe", {"MI": 0.8, "STTC": 0.9, "CD": 0.7, "HYP": 0.6}))
    rows = rows[~((rows.task == "HYP") & (rows.metric == "AUPRC"))]
    rows = pd.concat([rows, _frame(_rows("GL_p60_d2_e512", "linear_probe", AUC))])
    cells = report.summarize(rows)
    assert set(cells[cells.metric == "criteria"]["model"]) == {"GL_p60_d2_e512"}


def test_table1_pairs_each_method_with_random_init_and_compares_with_the_paper():
    rows = _frame(_rows("HL_p60_d2_e512", "linear_probe", AUC)
                  + _rows("random_p60_d2_e512", "linear_probe", {k: 0.5 for k in AUC})
                  + _rows("HL_p125_d2_e512", "linear_probe", {k: 0.99 for k in AUC}))   # not the chosen one
    ours = report.build_table(1, rows, BEST)
    assert set(ours["key"]) == {"HL", "random@HL"}
    comp = report.compare(ours, report.load_published(), 1)
    hl_mi = comp[(comp.key == "HL") & (comp.task == "MI") & (comp.metric == "AUROC")].iloc[0]
    assert hl_mi["ours"] == 0.8 and hl_mi["paper"] == 0.8053 and hl_mi["diff"] == pytest.approx(0.8 - 0.8053)
    crit = comp[(comp.key == "random@HL") & (comp.metric == "criteria")].iloc[0]
    assert crit["ours"] == pytest.approx(0.5 * 4 * 1.5) and crit["paper"] == 4.8580
    # the methods we did not run keep the paper's row, with nothing of ours
    assert comp[comp.key == "CL"]["ours"].isna().all() and comp[comp.key == "CL"]["paper"].notna().all()
    text = report.markdown(comp)
    assert "| HL | 60 | 2 | 512 | 0.8000 | 0.9000 | 0.7000 | 0.6000 | 0.4000 |" in text
    assert "| HL | -0.0053 |" in text
    assert "prints MI AUROC 0.7238 where Table 8 has 0.7283" in report.caption(1, comp)


def test_table2_averages_risk_over_tasks():
    comps = {"approximation": 0.1, "usability": 0.05, "probe_generalization": 0.02,
             "encoder_generalization": -0.01, "total": 0.16}
    rows = []
    for k, task in enumerate(TASKS):
        rows += _rows("HL_p60_d2_e512", "risk", {task: 0}, metric_values={m: v + k / 100 for m, v in comps.items()})
    ours = report.build_table(2, _frame(rows), BEST)
    avg = ours[(ours.task == "average") & (ours.metric == "approximation")]["value"].item()
    assert avg == pytest.approx(0.1 + 0.015)
    comp = report.compare(ours, report.load_published(), 2)
    cell = comp[(comp.key == "HL") & (comp.task == "average") & (comp.metric == "total")].iloc[0]
    assert cell["paper"] == 0.2289 and cell["diff"] == pytest.approx(0.175 - 0.2289)
    # intervals shown beside the values; the fold-wise estimate as mean ± SD over its folds
    folds = [r for fold in (1, 2) for r in _rows("HL_p60_d2_e512", "risk", {"MI": 0}, setting="heldout=fold", seed=fold,
                                                  metric_values={"probe_generalization": 0.01 * fold})]
    comp = report.compare(report.build_table(2, _frame(rows + folds), BEST), report.load_published(), 2)
    ours = report.blocks(comp)["ours"].set_index(["key", "setting", "task"])
    assert ours.loc[("HL", "full", "MI"), "approximation"] == "0.1000 [0.0900, 0.1100]"
    assert ours.loc[("HL", "heldout=fold", "MI"), "probe_generalization"] == "0.0150 ± 0.0071"
    assert "1 - AUROC" in report.caption(2, comp) and "make_risk_decomposition" in report.caption(2, comp)


def test_grid_tables_match_on_architecture_and_show_oom():
    rows = _frame(_rows("HL_p250_d8_e256", "linear_probe", AUC) + _rows("HL_p60_d2_e512", "linear_probe", AUC))
    comp = report.compare(report.build_table(8, rows, BEST), report.load_published(), 8)
    oom = comp[(comp.key == "HL") & (comp.patch == 250) & (comp.depth == 8) & (comp.width == 256)
               & (comp.task == "MI")].iloc[0]
    assert oom["ours"] == 0.8 and oom["paper_note"] == "OOM" and np.isnan(oom["diff"])
    assert set(comp[comp.ours.notna()]["metric"]) == {"AUROC", "criteria"}      # Table 8: AUROC only
    wide = report.blocks(comp)
    paper = wide["paper"]
    row = paper[(paper.patch == "250") & (paper.depth == "8") & (paper.width == "256")]
    assert row["MI HL"].item() == "OOM" and row["MI CL"].item() == "0.7849"
    assert len(wide["ours - paper"]) == 1                                       # only p60 d2 e512 in common


def test_stress_tables_keep_settings_apart():
    rows = []
    for ratio in (0.05, 0.01):
        rows += _rows("ViT_p60_d2_e512", "case_ratio", {k: 0.9 - ratio for k in AUC}, setting=f"ratio={ratio}")
    comp = report.compare(report.build_table(4, _frame(rows), BEST), report.load_published(), 4)
    sup = comp[(comp.key == "supervised") & (comp.task == "MI") & (comp.metric == "AUROC")]
    got = sup.set_index("setting")
    assert got.loc["ratio=0.05", "paper"] == 0.9185 and got.loc["ratio=0.01", "ours"] == pytest.approx(0.89)
    assert np.isnan(got.loc["ratio=0.02", "ours"])                              # not run, paper only
    # with the full-data fine-tuning of the same model: each setting's criteria drop from it
    full = _rows("ViT_p60_d2_e512", "finetune", {k: 0.9 for k in AUC})
    comp = report.compare(report.build_table(4, _frame(rows + full), BEST), report.load_published(), 4)
    drop = comp[(comp.key == "supervised") & (comp.metric == report.DROP)].set_index("setting")
    assert drop.loc["ratio=0.05", "ours"] == pytest.approx(0.05 * 6 / (0.9 * 6))    # (5.4 - 5.1) / 5.4
    assert drop.loc["ratio=0.05", "paper"] == 0.0252
    ours = report.blocks(comp)["ours"].set_index(["key", "setting"])
    assert ours.loc[("supervised", "ratio=0.01"), "criteria drop"] == "1.11%"
    assert "Appendix A.3 says 1%, 5% and 25%" in report.caption(4, comp)


def test_files_are_written(tmp_path):
    rows = _frame(_rows("HL_p60_d2_e512", "finetune", AUC) + _rows("ViT_p60_d2_e512", "finetune", AUC)
                  + _rows("ResNet50", "finetune", AUC))
    comp = report.compare(report.build_table(3, rows, BEST), report.load_published(), 3)
    paths = report.write_table(comp, tmp_path / "table3")
    back = pd.read_csv(paths[0])
    assert len(back) == len(comp) and set(back.key.dropna()) >= {"HL", "ViT@HL", "ResNet50"}
    assert "<table" in paths[2].read_text() and "Table 3" in paths[1].read_text()


def test_architecture_figure(tmp_path):
    rows = []
    for p in (60, 125):
        for w in (256, 512):
            rows += _rows(f"HL_p{p}_d2_e{w}", "linear_probe", AUC, split="validation")
    png, svg = report.architecture_figure(_frame(rows), "HL", TASKS, tmp_path / "figure3_HL")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in svg.read_text()[:500]
    with pytest.raises(ValueError, match="no validation AUROC"):
        report.architecture_figure(_frame(rows), "CL", TASKS, tmp_path / "figure4_CL")


# --- Tables 6 and 7 (ecgfm/corpus_tables.py) -------------------------------------------------------
def _summary(kept, records_in, amplitude, checks=None):
    return {"kept": kept, "records_in": records_in, "quarantined": records_in - kept,
            "quarantined_by_check": checks or {}, "median_peak_to_peak_mv": amplitude,
            "settings": {"leads": ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]}}


def test_table6_profiles_a_source_from_its_manifest_and_summary():
    from ecgfm.corpus_tables import load_published_corpus, source_profile, table6, table6_sections
    manifest = pd.DataFrame({
        "patient_id": ["a", "a", "b", "c"], "age": [40.0, 42.0, None, 60.0], "sex": ["M", "M", None, "F"],
        "orig_samples": [4096, 4096, 3900, 4096], "orig_fs": [500.0] * 4, "mv_per_unit": [0.00488] * 4,
        "stored_leads": [8] * 4, "qc_padded_samples": [452, 452, 550, 452], "qc_failed": ["", "flat lead", "", ""]})
    ikem = source_profile(manifest, _summary(4, 6, {"I": 1.0, "II": 2.0, "all": 1.5},
                                              {"no waveform": 1, "too short": 1}), "Czech Republic")
    assert (ikem["patients"], ikem["samples"], ikem["records_in"], ikem["quarantined"]) == (3, 4, 6, 2)
    assert ikem["duration_s"] == pytest.approx(8.192) and ikem["fs_hz"] == 500 and ikem["mv_unit"] == 0.00488
    assert ikem["stored_leads"] == 8 and ikem["leads"] == 12
    assert ikem["age_median"] == 42 and ikem["age_missing"] == 1 and ikem["age_iqr"] == "41-51"
    assert ikem["male_share"] == pytest.approx(2 / 3) and ikem["sex_missing"] == 1
    assert ikem["kept_with_qc_flags"] == 1 and ikem["zero_padded"] == 4
    ptbxl = {**ikem, "lead_amplitude_mv": {"I": 0.5, "II": 1.0}}
    long = table6({"ptbxl": ptbxl, "ikem": ikem}, load_published_corpus())
    cell = long.set_index(["key", "characteristic"])
    assert cell.loc[("ikem", "amplitude_vs_ptbxl"), "ours"] == pytest.approx(2.0)    # twice PTB-XL's
    assert cell.loc[("ikem", "patients"), "paper"] == 30290 and cell.loc[("ikem", "patients"), "diff"] == 3 - 30290
    assert cell.loc[("ikem", "country"), "paper"] == "Czech Republic" and np.isnan(cell.loc[("ikem", "country"), "diff"])
    assert np.isnan(cell.loc[("mimic", "samples"), "ours"]) and cell.loc[("mimic", "samples"), "paper"] == 800035
    sections = table6_sections(long, {"ptbxl": ptbxl, "ikem": ikem}, ["mimic", "ikem"])
    assert list(sections["ours - paper"].columns) == ["characteristic", "ikem"]
    assert sections["quarantined, by check"].set_index("check").loc["too short", "ikem"] == 1


def test_table7_counts_each_task_over_the_labeled_records():
    from ecgfm.corpus_tables import load_published_corpus, table7
    labels = pd.DataFrame({"record_id": ["1", "2", "3", "4"], "patient_id": ["p", "p", "q", "r"],
                           "split": ["train", "train", "validation", "test"],
                           "MI": [True, True, False, False], "HYP": [False, True, False, True]})
    manifest = pd.DataFrame({"record_id": ["1", "2", "3", "4", "5"], "orig_samples": [1000] * 5,
                             "orig_fs": [100.0] * 5})
    long = table7(labels, manifest, _summary(5, 5, {}), ["MI", "HYP"], load_published_corpus())
    cell = long.set_index(["key", "characteristic"])["ours"]
    assert (cell["MI", "samples"], cell["MI", "patients"], cell["MI", "case_ratio"]) == (2, 1, 0.5)
    assert (cell["HYP", "samples"], cell["HYP", "patients"], cell["HYP", "samples_test"]) == (2, 2, 1)
    assert (cell["MI", "length"], cell["MI", "duration_s"], cell["MI", "fs_hz"]) == (1000, 10, 100)
