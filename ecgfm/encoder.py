"""Loading a saved encoder (``encoder.safetensors`` + ``config.json``) and embedding arrays."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .model import Architecture, ECGFoundationModel


def load_encoder(path, device="cpu") -> ECGFoundationModel:
    """The model of a pretraining output folder, with its encoder weights, in eval mode.

    Only the encoder is shipped: the decoder and projection head keep their initial weights and
    are not used by ``embed``.
    """
    from safetensors.torch import load_file
    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    model = ECGFoundationModel(Architecture(**config["architecture"]))
    missing, unexpected = model.load_state_dict(load_file(str(path / "encoder.safetensors")), strict=False)
    if unexpected or any(k.startswith(("patch_embed.", "blocks.", "norm.")) for k in missing):
        raise ValueError(f"{path}: encoder weights do not match its architecture "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.to(device).eval()


@torch.no_grad()
def embed_array(model: ECGFoundationModel, x: np.ndarray, batch_size: int = 256, device="cpu") -> np.ndarray:
    """Standardized ECGs [n, 12, 2500] (mV, 250 Hz) -> embeddings [n, width] (mean-pooled tokens)."""
    out = []
    for start in range(0, len(x), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32))
        out.append(model.embed(chunk.to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.empty((0, model.arch.width), np.float32)
