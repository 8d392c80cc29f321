"""``ecgfm`` command line: the data stages outside Snakemake (one source, one command).

    ecgfm standardize --source ptbxl --root /data/ptb-xl --out results/standardized/ptbxl
    ecgfm download --source code15 --dest /data/code15
    ecgfm demo ptbxl /tmp/demo-ptbxl --patients 100
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from .config import load_config, raw_dir, standardize_block


def _config(args):
    return load_config(*(args.config or ["config.yaml"]))


def cmd_standardize(args) -> int:
    from .corpus import standardize_source
    from .readers import make_reader
    from .standardize import Settings

    config = _config(args)
    src = config["sources"][args.source]
    block = standardize_block(config, args.source)
    reader = make_reader(src["reader"], args.root or raw_dir(config, args.source), args.source,
                         src.get("reader_options"))
    start = time.perf_counter()
    summary = standardize_source(reader, args.out, args.source,
                                 Settings.from_config(block, expected_fs=reader.expected_fs),
                                 shard_size=block["shard_size"], dtype=block["dtype"],
                                 compression=block["compression"],
                                 threads=args.threads or block["threads"], chunk_size=block["chunk_size"])
    summary["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_download(args) -> int:
    from .download import download_source

    config = _config(args)
    spec = config["sources"][args.source].get("download")
    if not spec:
        print(f"sources.{args.source} has no download block", file=sys.stderr)
        return 2
    files = download_source(spec, args.dest, config["download"])
    print(f"{len(files)} files verified under {args.dest}")
    return 0


def cmd_demo(args) -> int:
    from .demo import write_demo_source

    print(json.dumps(write_demo_source(args.layout, args.dest, n_patients=args.patients, seed=args.seed)))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ecgfm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("standardize", help="standardize one source into shards + manifest + quarantine")
    p.add_argument("--source", required=True)
    p.add_argument("--root", help="raw archive folder (default: the config's path or download dir)")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int)
    p.add_argument("--config", action="append", help="config file(s), later ones overlay (default config.yaml)")
    p.set_defaults(func=cmd_standardize)
    p = sub.add_parser("download", help="download and verify one source")
    p.add_argument("--source", required=True)
    p.add_argument("--dest", required=True)
    p.add_argument("--config", action="append")
    p.set_defaults(func=cmd_download)
    p = sub.add_parser("demo", help="write a synthetic archive in a source's real format")
    p.add_argument("layout")
    p.add_argument("dest")
    p.add_argument("--patients", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
