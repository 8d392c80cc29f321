"""ecgfm: ECG foundation models with hybrid self-supervised learning (Song et al., KDD 2025).

    from ecgfm import load_encoder
    encoder = load_encoder("results/pretrain/HL_p60_d2_e512")
    z = encoder.embed(x, fs=500)        # x: [n, 12, samples] in mV -> [n, width]

    from ecgfm import adapt_encoder
    model = adapt_encoder("results/pretrain/HL_p60_d2_e512", "my_ecgs", "labels.csv", out="my_model")
    model.metrics                       # test metrics with 95% intervals; model.predict(x, fs=500)
"""
__all__ = ["load_encoder", "adapt_encoder", "load_adapted"]


def load_encoder(path, device="cpu"):
    """A saved encoder with its preprocessing (``ecgfm.encoder.Encoder``); torch is imported here."""
    from .encoder import load_encoder as _load
    return _load(path, device)


def adapt_encoder(encoder_dir, ecgs, labels, out=None, mode="probe", **options):
    """Adapt an encoder to labelled ECGs (files as ``ecgfm embed`` takes them, or an array
    [n, 12, samples] with ``fs=``) and a labels file or DataFrame: ``ecgfm.adapt.adapt``, as the
    ``ecgfm finetune`` command does. Returns the model (``.metrics``, ``.predict``)."""
    from .adapt import adapt
    return adapt(encoder_dir, ecgs, labels, out, mode=mode, **options)


def load_adapted(path, device="cpu"):
    """A model folder written by ``ecgfm finetune`` (``ecgfm.adapt.load``), ready to ``predict``."""
    from .adapt import load
    return load(path, device)
