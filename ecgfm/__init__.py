"""ecgfm: ECG foundation models with hybrid self-supervised learning (Song et al., KDD 2025).

    from ecgfm import load_encoder
    encoder = load_encoder("results/pretrain/HL_p60_d2_e512")
    z = encoder.embed(x, fs=500)        # x: [n, 12, samples] in mV -> [n, width]
"""
__all__ = ["load_encoder"]


def load_encoder(path, device="cpu"):
    """A saved encoder with its preprocessing (``ecgfm.encoder.Encoder``); torch is imported here."""
    from .encoder import load_encoder as _load
    return _load(path, device)
