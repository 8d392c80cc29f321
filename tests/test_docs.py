"""The README and docs/ stay true: links resolve, commands name what exists, the rule graph
picture is the workflow's, and the demo's Table 1 in the README is the demo's."""
import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, run_snakemake

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"^[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target}"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{page.name}: {target} (headings: {sorted(_anchors(resolved))})"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_name_profiles_subcommands_and_scripts_that_exist(page):
    from ecgfm.cli import main
    text = page.read_text()
    for name in re.findall(r"--profile (?:profiles/)?([\w-]+)", text):
        assert (REPO / "profiles" / name / "config.yaml").exists(), f"{page.name}: --profile {name}"
    code = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL))
    for sub in set(re.findall(r"^\s*(?:\$ )?ecgfm ([a-z]+)\b", code, re.MULTILINE)):
        with pytest.raises(SystemExit) as exc:
            main([sub, "--help"])
        assert exc.value.code == 0, f"{page.name}: ecgfm {sub}"
    for script in re.findall(r"python (benchmarks/\w+\.py|tests/\w+\.py)", text):
        assert (REPO / script).exists(), f"{page.name}: {script}"


def test_rule_graph_picture_is_the_workflows(demo_results):
    run = run_snakemake("--profile", "profiles/demo", "--config", f"results={demo_results}", "--rulegraph",
                        timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    rules = set(re.findall(r'label = "(\w+)"', run.stdout))
    svg = (REPO / "docs" / "rulegraph.svg").read_text()
    pictured = set(re.findall(r">(\w+)</text>", svg))
    assert rules == pictured, f"regenerate: snakemake --profile demo --rulegraph | dot -Tsvg > docs/rulegraph.svg " \
                              f"(missing {rules - pictured}, stale {pictured - rules})"


def test_readme_table1_is_the_demos(demo_results):
    table = pd.read_csv(demo_results / "tables" / "table1.csv", dtype={"setting": str})
    readme = (REPO / "README.md").read_text()
    rows = {m[0]: m[1:] for m in re.findall(
        r"^\| (CL|GL|HL) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([+-][\d.]+) \(", readme, re.MULTILINE)}
    assert set(rows) == {"CL", "GL", "HL"}
    for key, values in rows.items():
        ours = table[(table["key"] == key) & (table["metric"] == "AUROC")].set_index("task")["ours"]
        assert [f"{ours[t]:.3f}" for t in ("MI", "STTC", "CD", "HYP")] == list(values[:4]), key
        diff = table[(table["key"] == key) & (table["metric"] == "mean_auroc_vs_random")]["ours"].item()
        assert f"{diff:+.3f}" == values[4], key
