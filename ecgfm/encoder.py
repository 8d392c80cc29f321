"""A saved encoder as a tool: ``load_encoder(path)`` then ``encoder.embed(x, fs=...)``.

A model folder (a pretraining output, or a fine-tuned ViT) holds ``encoder.safetensors`` and
``config.json`` with the architecture and the preprocessing it was trained with. ``Encoder``
applies that preprocessing to arrays (resampling to the model's rate, the centre crop to its
duration) and returns the embedding used everywhere downstream: the mean of the patch tokens.

    from ecgfm import load_encoder
    encoder = load_encoder("results/pretrain/HL_p60_d2_e512")
    z = encoder.embed(x, fs=500)            # x: [n, 12, samples] in mV, leads I..V6 -> [n, width]

Records in files (WFDB, DICOM, MUSE XML, arrays, CODE-style HDF5, a reader of ``ecgfm.readers``)
go through ``ecgfm.inference.embed_records(encoder, path)``, which reads and standardizes them:
the input side sits above this module, which knows only arrays.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .leads import CANONICAL_LEADS
from .model import Architecture, ECGFoundationModel
from .resnet1d import ResNet1d, ResNetArchitecture
from .standardize import crop_or_pad, resample


def backbone(kind: str, architecture: dict):
    """A fresh backbone: our ViT encoder (``vit``) or the 1D-ResNet50 (``resnet1d``); both have
    ``embed`` ([B, leads, T] -> [B, arch.features]) and ``encoder_state_dict``."""
    if kind == "vit":
        return ECGFoundationModel(Architecture(**architecture))
    if kind == "resnet1d":
        return ResNet1d(ResNetArchitecture(**{**architecture, "layers": tuple(architecture["layers"])}))
    raise ValueError(f"unknown backbone kind {kind!r} (vit or resnet1d)")


def load_model(path, device="cpu"):
    """The backbone of a model folder with its encoder weights, in eval mode: an
    ``ECGFoundationModel`` (config ``kind`` absent or ``vit``) or a ``ResNet1d`` (``resnet1d``).

    Only a ViT's encoder is shipped: the decoder and projection head keep their initial weights
    and are not used by ``embed``.
    """
    from safetensors.torch import load_file
    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    kind = config.get("kind", "vit")
    model = backbone(kind, config["architecture"])
    if kind != "vit":
        model.load_state_dict(load_file(str(path / "encoder.safetensors")))
        return model.to(device).eval()
    missing, unexpected = model.load_state_dict(load_file(str(path / "encoder.safetensors")), strict=False)
    if unexpected or any(k.startswith(("patch_embed.", "blocks.", "norm.")) for k in missing):
        raise ValueError(f"{path}: encoder weights do not match its architecture "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.to(device).eval()


@torch.no_grad()
def embed_array(model: ECGFoundationModel, x: np.ndarray, batch_size: int = 256, device="cpu") -> np.ndarray:
    """Standardized ECGs [n, 12, samples] (mV, the model's rate) -> embeddings [n, width]."""
    out = []
    for start in range(0, len(x), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32))
        out.append(model.embed(chunk.to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.empty((0, model.arch.features), np.float32)


class Encoder:
    """A loaded encoder with its preprocessing. ``model`` is the underlying torch module."""

    def __init__(self, model: ECGFoundationModel, config: dict, device="cpu"):
        self.model, self.config, self.device = model, config, torch.device(device)
        pre = config.get("preprocessing", {})
        self.fs = float(pre.get("fs", 250.0))
        self.seconds = float(pre.get("seconds", 10.0))
        self.leads = list(pre.get("leads", CANONICAL_LEADS))
        self.width = model.arch.features

    @property
    def n_samples(self) -> int:
        return int(round(self.fs * self.seconds))

    def standardize(self, x: np.ndarray, fs: float | None = None) -> np.ndarray:
        """[n, leads, samples] at ``fs`` -> [n, leads, n_samples] at the model's rate (centre crop)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != len(self.leads):
            raise ValueError(f"expected an array [records, {len(self.leads)} leads ({', '.join(self.leads)}), "
                             f"samples], got shape {x.shape}")
        fs = self.fs if fs is None else float(fs)
        if fs != self.fs:           # both functions work along the last axis, every record at once
            x = resample(x, fs, self.fs)
        if x.shape[-1] < self.n_samples:
            raise ValueError(f"records of {x.shape[-1] / self.fs:.2f} s; the model needs {self.seconds:g} s")
        return crop_or_pad(x, self.n_samples, False)[0]

    def embed(self, x: np.ndarray, fs: float | None = None, batch_size: int = 256) -> np.ndarray:
        """Embeddings [n, width] of ECGs [n, 12, samples] in mV sampled at ``fs`` (default: the model's)."""
        return embed_array(self.model, self.standardize(x, fs), batch_size, self.device)


def load_encoder(path, device="cpu") -> Encoder:
    """An ``Encoder`` from a model folder (``encoder.safetensors`` + ``config.json``)."""
    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    return Encoder(load_model(path, device), config, device)


def write_random_encoder(out, name: str, architecture: dict, preprocessing: dict, seed: int,
                         kind: str = "vit") -> Path:
    """A model folder holding a seeded random initialisation of ``architecture`` (a ViT, or with
    ``kind="resnet1d"`` the 1D-ResNet50): the random-init baseline, usable wherever a pretrained
    encoder folder is; fine-tuned by ``ecgfm.adapt`` it is trained from scratch."""
    from safetensors.torch import save_file
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = backbone(kind, architecture)
    save_file({k: v.detach().contiguous() for k, v in model.encoder_state_dict().items()},
              str(out / "encoder.safetensors"))
    config = {"format": "ecgfm-encoder/1", "name": name, "kind": kind, "architecture": architecture,
              "preprocessing": preprocessing, "objective": {"method": "random", "seed": seed}}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out
