"""Rule dataset_adapt: one encoder adapted to one labelled dataset in each of its modes (probe,
LP-FT; the 1D-ResNet50 trained from scratch): a model folder per mode, their test and validation
rows together."""
from pathlib import Path

import pandas as pd

from ecgfm.adapt import adapt
from ecgfm.inference import InputOptions
from ecgfm.runlog import log_to

sm = snakemake  # noqa: F821  (injected by Snakemake)
log_to(sm.log[0])
spec, out = sm.params.spec, Path(sm.output[0])
options = InputOptions(leads=InputOptions.parse_leads(spec["leads"]), window_stride_s=spec["window_stride_s"],
                       pad_short=spec["pad_short"], workers=sm.threads)
frames = []
for mode in sm.params.modes:
    model = adapt(Path(sm.input.encoder).parent, sm.input.ecgs, sm.input.labels, out.parent / mode, mode=mode,
                  targets=spec["targets"], kinds=spec["target_types"], threshold=spec["threshold"],
                  seed=sm.config["seed"], settings=sm.params.settings, options=options, cache_dir=sm.params.cache,
                  command=f"snakemake: dataset_adapt {sm.wildcards.dataset} {sm.wildcards.model} {mode}")
    frames.append(model.metrics.assign(mode=mode, kind=model.metrics["target"].map(
        {t.name: t.kind for t in model.targets})))
pd.concat(frames, ignore_index=True).to_csv(out, index=False, float_format="%.6g")
