"""Sharded HDF5 storage of standardized ECGs, and random access to it.

Layout of one source (``results/standardized/{source}/``):

* ``shard-{k:05d}.h5``: dataset ``ecg`` [n, 12, 2500] chunked one record per chunk, and
  ``record_id`` [n] (UTF-8), so a shard can be checked against the manifest on its own.
* ``manifest.parquet``: one row per kept record; ``shard`` and ``row`` locate its waveform.
* ``quarantine.parquet``: one row per rejected record with its ``reason``.

dtype: float16 by default. The sources are digitised at 1-5 microvolts; float16 keeps 11
significant bits, i.e. an error below 1 uV under 2 mV and below 4 uV under 8 mV, while halving
storage and read bandwidth (what bounds the training loader). ``float32`` is a config switch.
No compression by default: a chunk per record must decode at tens of thousands of records per
second for pretraining; ``compression: lzf`` trades that for about half the disk.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.h5"


class ShardWriter:
    """Accumulates standardized records and writes them in shards of ``shard_size`` records.

    Each shard is written to a temporary name and renamed when complete, so a crash never
    leaves a shard that looks finished.
    """

    def __init__(self, out_dir, n_leads: int, n_samples: int, shard_size: int,
                 dtype: str = "float16", compression: str | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.shape = (n_leads, n_samples)
        self.shard_size, self.dtype, self.compression = int(shard_size), np.dtype(dtype), compression
        self._buffer: list[np.ndarray] = []
        self._ids: list[str] = []
        self.n_shards = 0
        self.written = 0

    def add(self, record_id: str, ecg: np.ndarray) -> tuple[int, int]:
        """Queue one record; returns its (shard, row)."""
        if ecg.shape != self.shape:
            raise ValueError(f"record {record_id}: shape {ecg.shape}, expected {self.shape}")
        location = (self.n_shards, len(self._buffer))
        self._buffer.append(ecg.astype(self.dtype))
        self._ids.append(record_id)
        if len(self._buffer) == self.shard_size:
            self.flush()
        return location

    def flush(self) -> None:
        import h5py
        if not self._buffer:
            return
        final = self.out_dir / shard_name(self.n_shards)
        tmp = final.with_suffix(".h5.tmp")
        with h5py.File(tmp, "w") as f:
            f.create_dataset("ecg", data=np.stack(self._buffer), chunks=(1, *self.shape),
                             compression=self.compression)
            f.create_dataset("record_id", data=np.array(self._ids, dtype=object),
                             dtype=h5py.string_dtype())
            f.attrs["layout"] = "ecg[record, lead, sample]; leads I,II,III,aVR,aVL,aVF,V1-V6; mV"
        os.replace(tmp, final)
        self.written += len(self._buffer)
        self.n_shards += 1
        self._buffer, self._ids = [], []


def remove_shards(out_dir) -> None:
    """Delete the shards (and leftover temporaries) of an earlier run of a source."""
    for path in Path(out_dir).glob("shard-*.h5*"):
        path.unlink()


class ShardReader:
    """Random access to standardized records by manifest row: ``reader.read(indices)``.

    Shard files are opened lazily and once per process, so an instance can be handed to
    DataLoader workers (each opens its own handles after fork).
    """

    def __init__(self, directory, manifest: pd.DataFrame | None = None):
        self.directory = Path(directory)
        self.manifest = manifest if manifest is not None else pd.read_parquet(
            self.directory / "manifest.parquet")
        self._shard = self.manifest["shard"].to_numpy()
        self._row = self.manifest["row"].to_numpy()
        self._files: dict[int, object] = {}
        self._pid = None

    def __len__(self) -> int:
        return len(self.manifest)

    def _file(self, shard: int):
        import h5py
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        if shard not in self._files:
            self._files[shard] = h5py.File(self.directory / shard_name(shard), "r")
        return self._files[shard]["ecg"]

    def read(self, indices) -> np.ndarray:
        """Records at manifest positions ``indices`` -> float32 [len(indices), 12, n_samples]."""
        indices = np.asarray(indices, dtype=np.int64)
        out = None
        shards = self._shard[indices]
        for shard in np.unique(shards):
            where = np.flatnonzero(shards == shard)
            unique_rows, inverse = np.unique(self._row[indices[where]], return_inverse=True)
            ds = self._file(int(shard))
            data = ds[unique_rows]  # h5py wants increasing, distinct row indices
            if out is None:
                out = np.empty((len(indices), *ds.shape[1:]), dtype=np.float32)
            out[where] = data[inverse]
        return out
