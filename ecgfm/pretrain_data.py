"""The pretraining corpus: the union of standardized sources, and a patient-aware batch sampler.

``PretrainCorpus`` concatenates the manifests of several standardized sources (optionally only
some PTB-XL folds, for the risk decomposition's variant) and reads records by global index,
streaming from the shards: nothing is loaded whole.

``PatientPairSampler`` yields batches of (anchor, partner) index pairs:

* every anchor of a batch is a different patient, so no negative of InfoNCE is secretly a
  positive;
* the partner is another ECG of the anchor's patient when the patient has one (the
  patient-level positive), else the anchor itself (the loss then falls back to two views of one
  ECG);
* shard-aware shuffling: an epoch visits shards in a random order, ``block_shards`` at a time,
  and shuffles records within each block, so a worker's reads stay within a few shards;
* its whole state is (seed, epoch, batch): an epoch's order is a pure function of (seed, epoch),
  so a resumed run continues with exactly the batches an uninterrupted one would have seen.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .shards import ShardReader


class PretrainCorpus:
    def __init__(self, source_dirs: list, ptbxl_dir=None, ptbxl_folds=()):
        self.readers: list[ShardReader] = []
        parts = []
        for k, directory in enumerate(source_dirs):
            reader = ShardReader(directory)
            self.readers.append(reader)
            m = reader.manifest
            parts.append(pd.DataFrame({"source_index": k, "local": np.arange(len(m)),
                                       "patient_id": m["patient_id"].to_numpy(),
                                       "shard_key": [f"{k}:{s}" for s in m["shard"]]}))
        if ptbxl_dir is not None and len(ptbxl_folds):
            reader = ShardReader(ptbxl_dir)
            m = reader.manifest
            keep = np.flatnonzero(m["strat_fold"].isin(list(ptbxl_folds)).to_numpy())
            self.readers.append(reader)
            k = len(self.readers) - 1
            parts.append(pd.DataFrame({"source_index": k, "local": keep,
                                       "patient_id": m["patient_id"].to_numpy()[keep],
                                       "shard_key": [f"{k}:{s}" for s in m["shard"].to_numpy()[keep]]}))
        if not parts:
            raise ValueError("the pretraining corpus is empty: no source given")
        table = pd.concat(parts, ignore_index=True)
        if len(table) == 0:
            raise ValueError("the pretraining corpus has no record")
        self.source_index = table["source_index"].to_numpy()
        self.local = table["local"].to_numpy()
        self.patient = pd.factorize(table["patient_id"])[0]
        self.shard = pd.factorize(table["shard_key"])[0]
        self.sources = [str(Path(r.directory)) for r in self.readers]

    def __len__(self):
        return len(self.local)

    def read(self, indices) -> np.ndarray:
        indices = np.asarray(indices)
        out = None
        for k in np.unique(self.source_index[indices]):
            where = np.flatnonzero(self.source_index[indices] == k)
            data = self.readers[k].read(self.local[indices[where]])
            if out is None:
                out = np.empty((len(indices), *data.shape[1:]), dtype=np.float32)
            out[where] = data
        return out


class PatientPairSampler:
    def __init__(self, patient: np.ndarray, shard: np.ndarray, batch_size: int, seed: int,
                 block_shards: int = 4, rank: int = 0, world_size: int = 1):
        self.patient, self.shard = np.asarray(patient), np.asarray(shard)
        self.batch_size, self.seed, self.block_shards = batch_size, seed, block_shards
        self.rank, self.world_size = rank, world_size
        order = np.argsort(self.patient, kind="stable")
        counts = np.bincount(self.patient)
        self._by_patient = order
        self._start = np.concatenate([[0], np.cumsum(counts)])
        self.epoch, self.batch = 0, 0
        n_patients = len(counts)
        if n_patients < batch_size * world_size:
            raise ValueError(f"{n_patients} patients cannot fill a batch of {batch_size} distinct "
                             f"patients on {world_size} rank(s)")

    def state_dict(self):
        return {"epoch": self.epoch, "batch": self.batch, "seed": self.seed}

    def load_state_dict(self, state):
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        shards = rng.permutation(self.shard.max() + 1)
        anchors = []
        for start in range(0, len(shards), self.block_shards):
            block = np.flatnonzero(np.isin(self.shard, shards[start : start + self.block_shards]))
            anchors.append(rng.permutation(block))
        anchors = np.concatenate(anchors)
        global_batch = self.batch_size * self.world_size
        batches, current, seen, deferred = [], [], set(), []
        for a in anchors:
            p = self.patient[a]
            if p in seen:
                deferred.append(a)
                continue
            current.append(a)
            seen.add(p)
            if len(current) == global_batch:
                batches.append(np.array(current))
                current, seen = [], set()
                retry, deferred = deferred, []
                for d in retry:                  # deferred anchors start the next batch
                    if self.patient[d] in seen:
                        deferred.append(d)
                    else:
                        current.append(d)
                        seen.add(self.patient[d])
        # the incomplete last batch is dropped: the next epoch reshuffles everything
        partners = []
        for batch in batches:
            pair = np.empty((len(batch), 2), dtype=np.int64)
            pair[:, 0] = batch
            for j, a in enumerate(batch):
                lo, hi = self._start[self.patient[a]], self._start[self.patient[a] + 1]
                others = self._by_patient[lo:hi]
                others = others[others != a]
                pair[j, 1] = others[rng.integers(len(others))] if len(others) else a
            partners.append(pair[self.rank * self.batch_size : (self.rank + 1) * self.batch_size])
        return partners

    def __iter__(self):
        """(epoch, batch, pairs) from the current state on. A DataLoader prefetches ahead of the
        training loop, so the trainer records the position of what it *consumed* (the tag that
        comes back with each batch) and restores the sampler from that."""
        while True:
            batches = self._epoch_batches(self.epoch)
            if not batches:
                raise ValueError("an epoch yields no full batch: lower the batch size")
            while self.batch < len(batches):
                self.batch += 1
                yield self.epoch, self.batch - 1, batches[self.batch - 1]
            self.epoch, self.batch = self.epoch + 1, 0


class PairDataset(torch.utils.data.Dataset):
    """Maps a batch of (anchor, partner) index pairs to tensors; used with ``batch_size=None``."""

    def __init__(self, corpus: PretrainCorpus):
        self.corpus = corpus

    def __getitem__(self, item):
        epoch, batch, pairs = item
        pairs = np.asarray(pairs)
        data = self.corpus.read(pairs.reshape(-1))                     # [2B, L, T]
        data = torch.from_numpy(data).view(len(pairs), 2, *data.shape[1:])
        return {"anchor": data[:, 0], "partner": data[:, 1],
                "has_partner": torch.from_numpy(pairs[:, 0] != pairs[:, 1]),
                "position": (epoch, batch)}
