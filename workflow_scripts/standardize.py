"""Rule standardize: one raw source -> standardized shards, manifest, quarantine, summary."""
from ecgfm.corpus import standardize_source
from ecgfm.readers import make_reader
from ecgfm.runlog import log_to
from ecgfm.standardize import Settings

sm = snakemake  # noqa: F821  (injected by Snakemake)
log = log_to(sm.log[0])
block = sm.params.settings
reader = make_reader(sm.params.reader, sm.params.root, sm.wildcards.source, sm.params.reader_options)
settings = Settings.from_config(block, expected_fs=reader.expected_fs)
summary = standardize_source(reader, out_dir=sm.output.manifest.rsplit("/", 1)[0],
                             source=sm.wildcards.source, settings=settings,
                             shard_size=block["shard_size"], dtype=block["dtype"],
                             compression=block["compression"], threads=sm.threads,
                             chunk_size=block["chunk_size"])
log.info("summary: %s", summary)
