# Stage 6: the paper's tables and figures from the tidy result rows (ecgfm/report.py), each with
# the paper's published numbers (ecgfm/paper/published.csv) beside ours, Tables 6-7 (the corpus)
# from the manifests and summaries (ecgfm/corpus_tables.py), and the HTML report
# (`snakemake --report report.html`) that shows them with captions, the config and runtimes.
TABLES = f"{RESULTS}/tables"
FIGURES = f"{RESULTS}/figures"
PUBLISHED = str(Path(workflow.basedir) / "ecgfm" / "paper" / "published.csv")
PUBLISHED_CORPUS = str(Path(workflow.basedir) / "ecgfm" / "paper" / "corpus.csv")
PEERS = str(Path(workflow.basedir) / "ecgfm" / "paper" / "peers.csv")
STANDARDIZED = f"{RESULTS}/standardized"

# Seconds of work on small tables: on a cluster they run where Snakemake runs, not through the queue.
localrules: table, table6, table7, lead_table, ptbxl_benchmark_table, figure, run_config


rule table:
    input:
        rows=lambda wc: expand(f"{EVAL}/{{protocol}}.parquet", protocol=table_protocols(int(wc.number), PROTOCOLS)),
        best=f"{EVAL}/best_architectures.json",
        published=PUBLISHED,
        scores=table_scores,
        labels=f"{EVAL}/labels.parquet",
    output:
        csv=f"{TABLES}/table{{number}}.csv",
        md=f"{TABLES}/table{{number}}.md",
        html=report(f"{TABLES}/table{{number}}.html", caption="captions/table.rst", category="Tables",
                    labels={"table": "Table {number}"}),
    wildcard_constraints:
        number="|".join(str(n) for n in TABLE_PROTOCOLS),
    params:
        title=lambda wc: table_title(int(wc.number)),
        tasks=config["evaluation"]["tasks"],
        resamples=config["evaluation"]["bootstrap_resamples"],
    log:
        f"{RESULTS}/logs/report/table{{number}}.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/table.py"


rule table6:
    input:
        manifests=expand(f"{STANDARDIZED}/{{source}}/manifest.parquet", source=SOURCES),
        summaries=expand(f"{STANDARDIZED}/{{source}}/summary.json", source=SOURCES),
        published=PUBLISHED_CORPUS,
    output:
        csv=f"{TABLES}/table6.csv",
        md=f"{TABLES}/table6.md",
        html=report(f"{TABLES}/table6.html", caption="captions/corpus.rst", category="Tables",
                    labels={"table": "Table 6"}),
    params:
        title="Table 6: the standardized sources",
        countries={source: config["sources"][source].get("country") for source in SOURCES},
    log:
        f"{RESULTS}/logs/report/table6.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/corpus_tables.py"


rule table7:
    input:
        labels=f"{EVAL}/labels.parquet",
        manifests=[f"{STANDARDIZED}/ptbxl/manifest.parquet"],
        summaries=[f"{STANDARDIZED}/ptbxl/summary.json"],
        published=PUBLISHED_CORPUS,
    output:
        csv=f"{TABLES}/table7.csv",
        md=f"{TABLES}/table7.md",
        html=report(f"{TABLES}/table7.html", caption="captions/corpus.rst", category="Tables",
                    labels={"table": "Table 7"}),
    params:
        title="Table 7: PTB-XL per superclass",
        tasks=config["evaluation"]["tasks"],
    log:
        f"{RESULTS}/logs/report/table7.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/corpus_tables.py"


rule lead_table:
    input:
        rows=f"{EVAL}/lead_subsets.parquet",
        best=f"{EVAL}/best_architectures.json",
    output:
        csv=f"{TABLES}/leads.csv",
        md=f"{TABLES}/leads.md",
        html=report(f"{TABLES}/leads.html", caption="captions/leads.rst", category="Tables",
                    labels={"table": "Fewer leads"}),
    params:
        subsets=list(config["evaluation"]["lead_subsets"]),
    log:
        f"{RESULTS}/logs/report/leads.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/lead_table.py"


rule ptbxl_benchmark_table:
    input:
        rows=benchmark_parts,
        best=f"{EVAL}/best_architectures.json",
        peers=PEERS,
    output:
        csv=f"{TABLES}/ptbxl_benchmark.csv",
        md=f"{TABLES}/ptbxl_benchmark.md",
        html=report(f"{TABLES}/ptbxl_benchmark.html", caption="captions/ptbxl_benchmark.rst", category="Tables",
                    labels={"table": "PTB-XL benchmark task sets"}),
    params:
        task_sets=benchmark_task_sets(),
    log:
        f"{RESULTS}/logs/report/ptbxl_benchmark.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/ptbxl_benchmark_table.py"


rule figure:
    input:
        f"{EVAL}/linear_probe.parquet",
    output:
        png=report(f"{FIGURES}/figure{{figure}}_{{method}}.png", caption="captions/figure.rst",
                   category="Figures", labels={"figure": "Figure {figure}", "method": "{method}"}),
        svg=f"{FIGURES}/figure{{figure}}_{{method}}.svg",
    wildcard_constraints:
        figure="3|4",
    params:
        tasks=config["evaluation"]["tasks"],
    log:
        f"{RESULTS}/logs/report/figure{{figure}}_{{method}}.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/figure.py"


rule run_config:
    output:
        report(f"{RESULTS}/report/config.yaml", caption="captions/config.rst", category="Configuration",
               labels={"file": "config.yaml"}),
    params:
        config=config,
    log:
        f"{RESULTS}/logs/report/config.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/run_config.py"
