"""Shard writer/reader round trip, the float16 storage error, and the config schema."""
import numpy as np
import pandas as pd
import pytest
import yaml

from ecgfm.config import ConfigError, load_config, standardize_block, validate
from ecgfm.shards import ShardReader, ShardWriter, shard_name


def test_shards_round_trip_with_float16_error_below_source_resolution(tmp_path):
    rng = np.random.default_rng(0)
    ecgs = rng.uniform(-8, 8, size=(23, 12, 2500)).astype(np.float32)
    writer = ShardWriter(tmp_path, 12, 2500, shard_size=10)
    rows = [dict(zip(("shard", "row"), writer.add(f"r{i}", e))) for i, e in enumerate(ecgs)]
    writer.flush()
    assert writer.n_shards == 3 and sorted(p.name for p in tmp_path.iterdir()) == [shard_name(k) for k in range(3)]
    manifest = pd.DataFrame(rows)
    reader = ShardReader(tmp_path, manifest)
    idx = [22, 3, 3, 0, 15, 9]                    # unsorted, a duplicate, across shards
    got = reader.read(idx)
    assert got.shape == (6, 12, 2500)
    err = np.abs(got - ecgs[idx])
    assert err.max() <= 8 * 2**-11 + 1e-7          # float16: 11 significant bits -> < 4 uV at 8 mV
    small = np.abs(ecgs[idx]) < 2
    assert err[small].max() <= 2 * 2**-11          # < 1 uV below 2 mV


def test_shard_has_its_record_ids(tmp_path):
    import h5py
    writer = ShardWriter(tmp_path, 12, 2500, shard_size=4, dtype="float32")
    for i in range(3):
        writer.add(f"id{i}", np.zeros((12, 2500), np.float32))
    writer.flush()
    with h5py.File(tmp_path / shard_name(0)) as f:
        assert [x.decode() for x in f["record_id"][:]] == ["id0", "id1", "id2"]
        assert f["ecg"].chunks == (1, 12, 2500) and f["ecg"].dtype == np.float32


def test_repository_config_validates_and_the_profiles_overlay_it():
    base = load_config("config.yaml")
    assert base["standardize"]["fs"] == 250 and base["standardize"]["seconds"] == 10
    grid = base["pretrain"]
    assert len(grid["methods"]) * len(grid["patch_sizes"]) * len(grid["depths"]) * len(grid["widths"]) == 81
    demo = load_config("config.yaml", "profiles/demo/demo-config.yaml")
    assert [s for s, c in demo["sources"].items() if c["enabled"]] == ["code15", "samitrop", "ikem", "ptbxl"]
    assert standardize_block(demo, "ptbxl")["keep_flagged"] is True
    assert demo["pretrain"]["loss_balance"] == base["pretrain"]["loss_balance"] == "running_mean"
    real = load_config("config.yaml", "profiles/ptbxl-cpu/ptbxl-config.yaml")
    assert real["pretrain"]["patch_sizes"] == [125, 250] and real["pretrain"]["corpus"] == []
    cut = load_config("config.yaml", "profiles/ptbxl-cpu/ptbxl-config.yaml", "profiles/ptbxl-cpu/grid-p125.yaml")
    assert cut["pretrain"]["patch_sizes"] == [125]
    assert {k: v for k, v in cut["pretrain"].items() if k != "patch_sizes"} == \
        {k: v for k, v in real["pretrain"].items() if k != "patch_sizes"}


def test_config_typo_fails_with_the_key_name():
    config = yaml.safe_load(open("config.yaml"))
    config["standardize"]["qc"]["flat_std_mV"] = 0.01
    with pytest.raises(ConfigError, match=r"standardize.qc.*flat_std_mV"):
        validate(config)
    config = yaml.safe_load(open("config.yaml"))
    config["standardize"]["fs"] = -250
    with pytest.raises(ConfigError, match="standardize.fs"):
        validate(config)


def test_compressed_shards_read_the_same(tmp_path):
    rng = np.random.default_rng(1)
    ecgs = rng.normal(size=(7, 12, 2500)).astype(np.float32)
    for compression in (None, "lzf"):
        out = tmp_path / str(compression)
        writer = ShardWriter(out, 12, 2500, shard_size=3, compression=compression)
        rows = [dict(zip(("shard", "row"), writer.add(str(i), e))) for i, e in enumerate(ecgs)]
        writer.flush()
        reader = ShardReader(out, pd.DataFrame(rows))
        assert (reader.shard(0).offsets is None) == (compression is not None)
        assert np.allclose(reader.read([6, 0, 4]), ecgs[[6, 0, 4]], atol=4e-3)
