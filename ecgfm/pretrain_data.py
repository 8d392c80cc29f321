"""The pretraining corpus: the union of standardized sources, and a patient-aware batch sampler.

``PretrainCorpus`` concatenates the manifests of several standardized sources (optionally only
some PTB-XL folds, for the risk decomposition's variant) and reads records by global index from
the shards. ``InMemoryCorpus`` holds all of it as one float16 tensor (on the GPU, or in pinned
host memory) when it fits a budget, and gathers each batch by index there, with no worker.

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

    def read(self, indices, dtype=None) -> np.ndarray:
        """Records by global index, as stored (float16 by default: the trainer converts on its
        device, so a batch crosses processes and the bus at half the bytes), or in ``dtype``."""
        indices = np.asarray(indices)
        out = None
        for k in np.unique(self.source_index[indices]):
            where = np.flatnonzero(self.source_index[indices] == k)
            data = self.readers[k].read(self.local[indices[where]], dtype=dtype)
            if out is None:
                out = np.empty((len(indices), *data.shape[1:]), dtype=data.dtype)
            out[where] = data
        return out

    def nbytes(self) -> int:
        """The corpus's size as stored, for the in-memory budget."""
        first = self.read([0])
        return int(first.nbytes) * len(self)


def distinct_patient_batches(anchors: list, patients: list, size: int) -> list[list]:
    """Full batches of ``size`` anchors, in order, no patient twice in a batch: an anchor whose
    patient is already in the batch waits, and the waiting anchors start the next batch (in
    their order) before the stream goes on. The incomplete last batch is left out."""
    batches, current, seen, waiting = [], [], set(), []
    queue = list(reversed(anchors))                              # pop() takes the next one
    patient_of = dict(zip(anchors, patients))
    while queue:
        a = queue.pop()
        p = patient_of[a]
        if p in seen:
            waiting.append(a)
            continue
        current.append(a)
        seen.add(p)
        if len(current) == size:
            batches.append(current)
            current, seen = [], set()
            queue.extend(reversed(waiting))                      # they come first, in order
            waiting = []
    return batches


class PatientPairSampler:
    def __init__(self, patient: np.ndarray, shard: np.ndarray, batch_size: int, seed: int,
                 block_shards: int = 4, rank: int = 0, world_size: int = 1):
        self.patient, self.shard = np.asarray(patient), np.asarray(shard)
        self.batch_size, self.seed, self.block_shards = batch_size, seed, block_shards
        self.rank, self.world_size = rank, world_size
        order = np.argsort(self.patient, kind="stable")
        counts = np.bincount(self.patient)
        self._by_patient, self._count = order, counts
        self._start = np.concatenate([[0], np.cumsum(counts)])
        self._position = np.empty(len(order), dtype=np.int64)      # a record's place among its patient's
        self._position[order] = np.arange(len(order)) - self._start[self.patient[order]]
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
        """This rank's [batch, 2] (anchor, partner) arrays of one epoch, a pure function of
        (seed, epoch). Vectorized but for the greedy pass that keeps patients distinct (a loop
        over Python ints): an epoch of 1.29M records is planned in about a second."""
        rng = np.random.default_rng([self.seed, epoch])
        shards = rng.permutation(self.shard.max() + 1)
        block_of_shard = np.empty(len(shards), dtype=np.int64)
        block_of_shard[shards] = np.arange(len(shards)) // self.block_shards
        block = block_of_shard[self.shard]
        by_block = np.argsort(block, kind="stable")               # each block's records, ascending
        bounds = np.searchsorted(block[by_block], np.arange(block.max() + 2))
        anchors = np.concatenate([rng.permutation(by_block[bounds[k]:bounds[k + 1]])
                                  for k in range(len(bounds) - 1)])
        global_batch = self.batch_size * self.world_size
        batches = distinct_patient_batches(anchors.tolist(), self.patient[anchors].tolist(), global_batch)
        # the incomplete last batch is dropped: the next epoch reshuffles everything
        if not batches:
            return []
        flat = np.asarray(batches, dtype=np.int64).reshape(-1)
        patient = self.patient[flat]
        n_others = self._count[patient] - 1
        has = n_others > 0
        draw = rng.integers(n_others[has])                         # one draw per anchor, in order
        draw += draw >= self._position[flat[has]]                  # skip the anchor itself
        partner = flat.copy()
        partner[has] = self._by_patient[self._start[patient[has]] + draw]
        pairs = np.stack([flat, partner], axis=1).reshape(len(batches), global_batch, 2)
        lo = self.rank * self.batch_size
        return list(pairs[:, lo:lo + self.batch_size])

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


def gather_order(pairs: np.ndarray) -> np.ndarray:
    """The records of a batch's ``pairs`` [B, 2] in the order they are gathered: the B anchors,
    then the B partners, so that each is one contiguous block of the gathered tensor."""
    return np.ascontiguousarray(np.asarray(pairs).T).reshape(-1)


def pair_batch(data: torch.Tensor, pairs: np.ndarray, position) -> dict:
    """{anchor, partner, has_partner, position} from the records of ``pairs`` gathered in
    ``gather_order``. Anchors and partners are contiguous halves of ``data``: a strided view
    (every other record) would be pinned with its strides, twice its bytes, and go to the GPU
    through a pageable staging copy that blocks the host."""
    b = len(pairs)
    return {"anchor": data[:b], "partner": data[b:],
            "has_partner": torch.from_numpy(pairs[:, 0] != pairs[:, 1]), "position": position}


class InMemoryCorpus:
    """The whole corpus as one tensor, as stored (float16), on the training device or in pinned
    host memory; each batch is gathered by index where it lives, with no worker process. It yields
    exactly the batches the streaming loader yields for the same sampler (tested).

    ``device``: where it lives; ``pin`` (on the host, for a CUDA trainer): page-locked. It is
    built ``chunk`` records at a time straight into where it lives: on the device, without a
    whole copy in host memory first; on the host (with a GPU), as an ordinary allocation of its
    exact size that is then registered with CUDA in place (``cudaHostRegister``), not through
    PyTorch's pinned allocator, which rounds every block up to a power of two (a 44.7 GiB corpus
    would take 64 GiB)."""

    def __init__(self, corpus: PretrainCorpus, device: torch.device, pin: bool = False, chunk: int = 2048):
        first = torch.from_numpy(corpus.read([0]))
        self.data = torch.empty((len(corpus), *first.shape[1:]), dtype=first.dtype, device=device)
        for start in range(0, len(corpus), chunk):
            part = torch.from_numpy(corpus.read(np.arange(start, min(start + chunk, len(corpus)))))
            self.data[start:start + len(part)].copy_(part)
        if pin:                         # host memory for a CUDA trainer
            register_pinned(self, self.data)
        self._staging: list[torch.Tensor] = []        # two pinned buffers, used in turn
        self._events: list = [None, None]             # the copy out of each, once queued
        self._turn = 1

    def batches(self, sampler: PatientPairSampler):
        """Batches from the sampler's current position on, as the streaming loader gives them."""
        for epoch, index, pairs in sampler:
            pairs = np.asarray(pairs)
            flat = torch.from_numpy(gather_order(pairs))
            if self.data.device.type != "cpu":
                # through pinned memory: a copy from pageable memory may wait for the GPU to drain
                data = self.data.index_select(0, flat.pin_memory().to(self.data.device, non_blocking=True))
            else:
                data = self._gather_on_host(flat)
            yield pair_batch(data, pairs, (epoch, index))

    def _gather_on_host(self, flat: torch.Tensor) -> torch.Tensor:
        """Gather into one of two pinned staging buffers (a CUDA trainer then copies it without
        blocking); a buffer is reused only once the copy out of it has finished."""
        if not self.data.is_pinned():
            return self.data.index_select(0, flat)
        if not self._staging or self._staging[0].shape[0] != len(flat):
            shape = (len(flat), *self.data.shape[1:])
            self._staging = [torch.empty(shape, dtype=self.data.dtype, pin_memory=True) for _ in range(2)]
            self._events = [None, None]
        k = self._turn = 1 - self._turn
        if self._events[k] is not None:
            self._events[k].synchronize()
        torch.index_select(self.data, 0, flat, out=self._staging[k])
        return self._staging[k]

    def copied(self) -> None:
        """Called by the trainer after it has queued the copy of the last batch to the GPU."""
        if self._staging and torch.cuda.is_available():
            event = torch.cuda.Event()
            event.record()
            self._events[self._turn] = event


def register_pinned(owner, tensor: torch.Tensor) -> None:
    """Page-lock ``tensor``'s memory in place for CUDA (its copies to the GPU then run without the
    host), for as long as ``owner`` lives: unregistered before the memory is freed."""
    import weakref
    cudart = torch.cuda.cudart()
    code = int(cudart.cudaHostRegister(tensor.data_ptr(), tensor.nbytes, 0))   # cudaHostRegisterDefault
    if code:
        raise RuntimeError(f"cudaHostRegister of the in-memory corpus ({tensor.nbytes / 2**30:.1f} GiB) "
                           f"failed with CUDA error {code}: lower pretrain.corpus_memory.host_gb or stream")
    weakref.finalize(owner, lambda t: cudart.cudaHostUnregister(t.data_ptr()), tensor)


def pinned_block_bytes(nbytes: int) -> int:
    """What PyTorch's caching host allocator (``pin_memory=True``) takes for a block of ``nbytes``:
    the next power of two."""
    return 1 << max(0, int(nbytes) - 1).bit_length()


def corpus_memory_needs(nbytes: int, batch_bytes: int, ranks_per_node: int = 1) -> dict:
    """Bytes that each in-memory mode really allocates: ``device``, per GPU (the corpus and one
    gathered batch); ``host``, per node (every rank's own copy of the corpus, registered at its
    exact size, and its two pinned staging buffers, each rounded up by the allocator). A batch is
    ``batch_bytes``: its anchors and partners as stored."""
    return {"device": nbytes + batch_bytes,
            "host": ranks_per_node * (nbytes + 2 * pinned_block_bytes(batch_bytes))}


def choose_corpus_mode(mode: str, nbytes: int, device: torch.device, device_budget_gb: float,
                       host_budget_gb: float, batch_bytes: int = 0, ranks_per_node: int = 1) -> str:
    """``auto``: the training device's memory when what it takes there fits its budget (per GPU),
    then (with a GPU) pinned host memory when every rank's share fits the node's budget, else
    streaming from the shards (``corpus_memory_needs``)."""
    if mode != "auto":
        return mode
    needs = corpus_memory_needs(nbytes, batch_bytes, ranks_per_node)
    if needs["device"] <= device_budget_gb * 2**30:
        return "device"
    if device.type == "cuda" and needs["host"] <= host_budget_gb * 2**30:
        return "host"
    return "stream"


class PairDataset(torch.utils.data.Dataset):
    """Maps a batch of (anchor, partner) index pairs to tensors; used with ``batch_size=None``."""

    def __init__(self, corpus: PretrainCorpus):
        self.corpus = corpus

    def __getitem__(self, item):
        epoch, batch, pairs = item
        pairs = np.asarray(pairs)
        data = torch.from_numpy(self.corpus.read(gather_order(pairs)))   # [2B, L, T], as stored
        return pair_batch(data, pairs, (epoch, batch))
