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
        self._buffer.append(ecg.astype(self.dtype, copy=False))
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


class _OpenShard:
    """One shard opened for reading: its dataset, and for uncompressed shards the byte offset of
    every record's chunk in the file (read once with ``chunk_iter``) and a raw file descriptor."""

    def __init__(self, path: Path):
        import h5py
        self.file = h5py.File(path, "r")
        self.ds = self.file["ecg"]
        self.record_shape = self.ds.shape[1:]
        self.dtype = self.ds.dtype
        self.offsets = None
        if self.ds.compression is None and hasattr(self.ds.id, "chunk_iter"):
            offsets = np.full(self.ds.shape[0], -1, dtype=np.int64)

            def visit(info):
                offsets[info.chunk_offset[0]] = info.byte_offset

            self.ds.id.chunk_iter(visit)
            if (offsets >= 0).all():
                self.offsets = offsets
                self.nbytes = int(np.prod(self.record_shape)) * self.dtype.itemsize
                self.fd = os.open(path, os.O_RDONLY)

    def read_into(self, row: int, out: np.ndarray) -> None:
        if self.offsets is not None:
            raw = os.pread(self.fd, self.nbytes, int(self.offsets[row]))
            out[...] = np.frombuffer(raw, dtype=self.dtype).reshape(self.record_shape)
        else:
            out[...] = self.ds[row]


class ShardReader:
    """Random access to standardized records by manifest row: ``reader.read(indices)``.

    Shard files are opened lazily and once per process, so an instance can be handed to
    DataLoader workers (each opens its own handles after fork). Each record is one HDF5 chunk,
    so an uncompressed shard is read with one ``pread`` per record at the chunk's byte offset
    (h5py's selection machinery costs ~10x more per random row); compressed shards go through
    h5py's per-record read.
    """

    def __init__(self, directory, manifest: pd.DataFrame | None = None):
        self.directory = Path(directory)
        self.manifest = manifest if manifest is not None else pd.read_parquet(
            self.directory / "manifest.parquet")
        self._shard = self.manifest["shard"].to_numpy()
        self._row = self.manifest["row"].to_numpy()
        self._open: dict[int, _OpenShard] = {}
        self._pid = None

    def __len__(self) -> int:
        return len(self.manifest)

    def shard(self, k: int) -> _OpenShard:
        if self._pid != os.getpid():           # a forked worker opens its own handles
            self._open, self._pid = {}, os.getpid()
        if k not in self._open:
            self._open[k] = _OpenShard(self.directory / shard_name(k))
        return self._open[k]

    def read(self, indices, dtype=np.float32) -> np.ndarray:
        """Records at manifest positions ``indices`` -> [len(indices), 12, n_samples] in ``dtype``
        (``None``: as stored, float16 by default, half the bytes to move)."""
        indices = np.asarray(indices, dtype=np.int64)
        shards, rows = self._shard[indices], self._row[indices]
        first = self.shard(int(shards[0])) if len(indices) else None
        dtype = (first.dtype if first else np.float32) if dtype is None else dtype
        out = np.empty((len(indices), *(first.record_shape if first else (0, 0))), dtype=dtype)
        for k in range(len(indices)):
            self.shard(int(shards[k])).read_into(int(rows[k]), out[k])
        return out
