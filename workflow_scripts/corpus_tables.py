"""Rules table6 and table7: the corpus of the run beside the paper's Tables 6 and 7 (ecgfm.corpus_tables)."""
import json
from pathlib import Path

import pandas as pd

from ecgfm.corpus_tables import load_published_corpus, source_profile, write_table6, write_table7
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
published = load_published_corpus(sm.input.published)
stem = sm.output.csv[: -len(".csv")]
summaries = [json.loads(Path(p).read_text()) for p in sm.input.summaries]
if sm.rule == "table6":
    profiles = {s["source"]: source_profile(pd.read_parquet(m), s, sm.params.countries.get(s["source"]))
                for m, s in zip(sm.input.manifests, summaries)}
    write_table6(profiles, published, stem)
    log.info("table 6: %s", {k: (p["samples"], p["amplitude_mv"]) for k, p in profiles.items()})
else:
    write_table7(pd.read_parquet(sm.input.labels), pd.read_parquet(sm.input.manifests[0]), summaries[0],
                 sm.params.tasks, published, stem)
    log.info("table 7 written")
