"""The pretraining objectives of the paper (section 3.2, equations 1-3).

* ``reconstruction_loss``: L1 between predicted and true patches, on the masked patches only
  (equation 1). ``reduction: mean`` (ours, the default) averages it over the masked values;
  ``sum`` is equation 1 as written, the sum of absolute errors over each ECG's masked values
  (averaged over the batch's ECGs), about 2 x 10^4 times larger at 12 x 2,460 samples and mask
  ratio 0.75. Under ``loss_balance: running_mean`` the two train the same model (the scale
  divides out); under ``none`` they set how much reconstruction weighs against InfoNCE. Targets are the standardized signal in mV (``target: raw``), or each patch
  normalised by its own mean and standard deviation per lead (``target: patch_norm``, MAE's
  "norm_pix"), which removes amplitude from the target: keep ``raw`` where amplitude carries the
  diagnosis (hypertrophy).
* ``info_nce``: InfoNCE with temperature over L2-normalised projections (equation 2): the positive
  of row i of ``z1`` is row i of ``z2``, every other row of ``z2`` (across all ranks under DDP)
  is a negative; symmetrised over the two directions.
* ``hybrid_loss``: w_recon * L_recon + w_patient * L_patient + w_sample * L_sample (equation 3),
  the paper's 1:1:1 by default. ``UncertaintyWeights`` learns the weights instead (Kendall et
  al. 2018: sum of exp(-s_k) L_k + s_k), an option the paper's limitations section asks for.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def contrastive_views(weights: dict) -> tuple:
    """The augmented views the InfoNCE terms of ``weights`` compare: a and b of the anchor (sample
    level), a and c, c of its partner, another ECG of the same patient (patient level)."""
    return tuple(name for name, on in (("a", weights["sample"] or weights["patient"]),
                                       ("b", weights["sample"]), ("c", weights["patient"])) if on)


def reconstruction_loss(pred, target, mask, target_mode: str = "raw", leads: int = 12, reduction: str = "mean"):
    """L1 over masked patches: the mean over their values, or (``sum``) equation 1's sum over each
    ECG's masked values, averaged over the batch. pred/target [B, N, L*P], mask [B, N] (1 = masked)."""
    if target_mode == "patch_norm":
        b, n, lp = target.shape
        t = target.view(b, n, leads, lp // leads)
        t = (t - t.mean(-1, keepdim=True)) / (t.std(-1, keepdim=True) + 1e-6)
        target = t.view(b, n, lp)
    elif target_mode != "raw":
        raise ValueError(f"unknown reconstruction target {target_mode!r}")
    if reduction == "sum":
        per_patch = (pred - target).abs().sum(dim=-1)                 # [B, N]
        return (per_patch * mask).sum() / pred.shape[0]
    if reduction != "mean":
        raise ValueError(f"unknown reconstruction reduction {reduction!r}; mean or sum")
    per_patch = (pred - target).abs().mean(dim=-1)                   # [B, N]
    return (per_patch * mask).sum() / mask.sum().clamp_min(1)


def gather_with_grad(z):
    """All ranks' rows of ``z`` concatenated, gradients flowing back to each rank's own rows."""
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z, 0
    # the functional collective (autograd-aware: its backward reduce-scatters the rows' gradients
    # back to their ranks, summed), which Dynamo captures inside the step's graph;
    # torch.distributed.nn.functional.all_gather breaks that graph in several pieces
    import torch.distributed._functional_collectives as collectives
    gather = getattr(collectives, "all_gather_single_autograd", None) or collectives.all_gather_tensor_autograd
    return gather(z.contiguous(), 0, dist.group.WORLD), dist.get_rank() * z.shape[0]


def info_nce(z1, z2, temperature: float):
    """Symmetric InfoNCE for L2-normalised z1, z2 [B, K]; negatives gathered across ranks."""
    all1, offset = gather_with_grad(z1)
    all2, _ = gather_with_grad(z2)
    targets = torch.arange(z1.shape[0], device=z1.device) + offset
    logits_12 = z1 @ all2.T / temperature                            # [B, world*B]
    logits_21 = z2 @ all1.T / temperature
    return (F.cross_entropy(logits_12, targets) + F.cross_entropy(logits_21, targets)) / 2


def hybrid_loss(parts: dict, weights: dict):
    """Weighted sum of the named loss parts (those with weight 0 may be absent)."""
    total = 0.0
    for name, w in weights.items():
        if w:
            total = total + w * parts[name]
    return total


class UncertaintyWeights(nn.Module):
    """Learned weights: L = sum_k exp(-s_k) * L_k + s_k, with one log-variance s_k per part."""

    def __init__(self, names):
        super().__init__()
        self.names = list(names)
        self.log_vars = nn.Parameter(torch.zeros(len(self.names)))

    def forward(self, parts: dict):
        total = 0.0
        for k, name in enumerate(self.names):
            total = total + torch.exp(-self.log_vars[k]) * parts[name] + self.log_vars[k]
        return total
