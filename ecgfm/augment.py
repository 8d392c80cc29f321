"""Augmentations that make the contrastive views (batched, on whatever device the batch is on).

Each takes x [B, L, T] in mV and a ``torch.Generator`` (so that a step's views are a function of
the seed and the step: a resumed run sees the same views), and returns a new tensor. Strengths
come from the config's ``augment`` block; ``make_view`` applies them in a fixed order.
"""
from __future__ import annotations

import math

import torch


def _rand(shape, gen, x):
    return torch.rand(shape, generator=gen, device=gen.device).to(x.device)


def random_shift(x, gen, max_fraction: float):
    """Circularly shift each ECG in time by up to ``max_fraction`` of its length (a random crop
    of a periodic signal, keeping its length)."""
    b, _, t = x.shape
    max_shift = int(t * max_fraction)
    if max_shift == 0:
        return x.clone()
    shifts = (_rand((b,), gen, x) * (2 * max_shift + 1)).long() - max_shift
    idx = (torch.arange(t, device=x.device)[None] - shifts[:, None]) % t      # [B, T]
    return torch.gather(x, 2, idx[:, None, :].expand(-1, x.shape[1], -1))


def amplitude_scale(x, gen, low: float, high: float):
    """Multiply each ECG by one factor drawn uniformly from [low, high]."""
    scale = low + (high - low) * _rand((x.shape[0], 1, 1), gen, x)
    return x * scale


def gaussian_noise(x, gen, std_mv: float):
    """Add white Gaussian noise of standard deviation ``std_mv``."""
    return x + std_mv * torch.randn(x.shape, generator=gen, device=gen.device).to(x.device)


def baseline_wander(x, gen, max_mv: float, fs: float, max_hz: float = 0.5):
    """Add a slow sinusoid (below ``max_hz``) of amplitude up to ``max_mv``, per ECG and lead."""
    b, leads, t = x.shape
    time = torch.arange(t, device=x.device) / fs
    freq = max_hz * _rand((b, leads, 1), gen, x)
    phase = 2 * math.pi * _rand((b, leads, 1), gen, x)
    amp = max_mv * _rand((b, leads, 1), gen, x)
    return x + amp * torch.sin(2 * math.pi * freq * time + phase)


def lead_dropout(x, gen, p: float):
    """Zero each lead independently with probability ``p`` (never all 12 of an ECG)."""
    keep = _rand(x.shape[:2], gen, x) >= p
    keep[:, 0] |= keep.sum(1) == 0              # no boolean indexing: no host synchronisation
    return x * keep[..., None]


def time_mask(x, gen, max_fraction: float):
    """Zero one random window of up to ``max_fraction`` of the length, per ECG (all leads)."""
    b, _, t = x.shape
    width = (_rand((b,), gen, x) * max_fraction * t).long()
    start = (_rand((b,), gen, x) * (t - width + 1).float()).long()
    pos = torch.arange(t, device=x.device)[None]
    masked = (pos >= start[:, None]) & (pos < (start + width)[:, None])
    return x * (~masked)[:, None, :]


def make_view(x, gen, cfg: dict, fs: float):
    """One augmented view with every augmentation of ``cfg`` (the config's ``augment`` block)."""
    x = random_shift(x, gen, cfg["shift_fraction"])
    x = amplitude_scale(x, gen, *cfg["scale_range"])
    x = gaussian_noise(x, gen, cfg["noise_std_mv"])
    x = baseline_wander(x, gen, cfg["wander_mv"], fs)
    x = lead_dropout(x, gen, cfg["lead_dropout"])
    return time_mask(x, gen, cfg["time_mask_fraction"])
