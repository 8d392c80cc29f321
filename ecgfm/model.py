"""The ECG foundation model: a ViT over 1-D patches with an MAE decoder and a projection head.

Read top to bottom: geometry (how 2,500 samples become patches), the patch embedding, the
transformer block, then ``ECGFoundationModel`` with patchify/unpatchify, random_masking,
forward_encoder, forward_decoder, embed and project. Shapes are written where they change:
B batch, L leads (12), T samples, N patches, P patch size, D width.

Patch sizes that do not divide the record length (60 into 2,500) are handled by
``fit_length``: a centred crop to the largest multiple of the patch size (2,460 samples for 60,
dropping 20 samples = 80 ms at each end), never zero padding, which the reconstruction objective
would otherwise have to learn to reproduce.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .objectives import contrastive_views


# --- geometry -----------------------------------------------------------------------------------

def autocast_for(device: torch.device):
    """The precision of every training and evaluation pass: bf16 autocast on CUDA, fp32 elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" \
        else torch.autocast("cpu", enabled=False)


# pretrain.attention: scaled_dot_product_attention's backend by name (auto: PyTorch chooses)
ATTENTION_BACKENDS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION",
                      "math": "MATH"}


def attention_backend(name: str = "auto"):
    """A context in which every ``scaled_dot_product_attention`` runs on the backend ``name``
    (``pretrain.attention``); it fails there (RuntimeError: no viable backend) if the device lacks it.
    auto: PyTorch's own choice. Our sequences are short (41 to 200 tokens), where the backends'
    speeds differ: ``benchmarks/pretrain.py --sdpa`` compares them."""
    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    if name not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}: auto or one of {', '.join(ATTENTION_BACKENDS)}")
    return sdpa_kernel(getattr(SDPBackend, ATTENTION_BACKENDS[name]))


def fit_length(n_samples: int, patch: int) -> int:
    """Samples kept for a record of ``n_samples`` with patches of ``patch``: the largest multiple."""
    if patch > n_samples:
        raise ValueError(f"patch size {patch} is longer than the record ({n_samples} samples)")
    return n_samples // patch * patch


def crop_to_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Centre-crop the last axis of ``x`` [..., T] to ``fit_length(T, patch)`` samples."""
    keep = fit_length(x.shape[-1], patch)
    start = (x.shape[-1] - keep) // 2
    return x[..., start : start + keep]


def sincos_positions(n: int, dim: int) -> torch.Tensor:
    """Fixed 1-D sine-cosine positional embedding [n, dim] (as in MAE, for one axis)."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    freq = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = pos * freq[None]
    emb = torch.cat([angles.sin(), angles.cos()], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb.float()


# --- building blocks ----------------------------------------------------------------------------

class PatchEmbed1d(nn.Module):
    """[B, L, T] -> [B, N, D]: a 1D convolution whose kernel and stride are the patch size.

    The weights are those of ``nn.Conv1d(leads, width, patch, stride=patch)``; since the patches do
    not overlap, the convolution is computed as what it equals, one matrix product of the patches
    ([B, N, L*P]) with the kernel ([D, L*P]): the same numbers, several times faster than a
    strided convolution on a CPU, and one GEMM on a GPU."""

    def __init__(self, leads: int, patch: int, width: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv1d(leads, width, kernel_size=patch, stride=patch)

    def forward(self, x):
        b, leads, t = x.shape
        n = t // self.patch
        patches = x[..., : n * self.patch].reshape(b, leads, n, self.patch).transpose(1, 2)
        return F.linear(patches.reshape(b, n, leads * self.patch),
                        self.proj.weight.reshape(self.proj.out_channels, -1), self.proj.bias)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v)          # [B, heads, N, d/heads]
        x = x + self.proj(attn.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


@dataclass(frozen=True)
class Architecture:
    patch: int
    depth: int
    width: int
    head_dim: int = 64
    mlp_ratio: float = 4.0
    leads: int = 12
    n_samples: int = 2500
    decoder_width: int = 256
    decoder_depth: int = 2
    projection_dim: int = 128

    @property
    def heads(self) -> int:
        return max(1, self.width // self.head_dim)

    @property
    def n_patches(self) -> int:
        return fit_length(self.n_samples, self.patch) // self.patch

    @property
    def features(self) -> int:
        """The embedding's width (the mean of the patch tokens)."""
        return self.width

    def to_dict(self) -> dict:
        return asdict(self)


def training_flops_per_sample(arch: Architecture, weights: dict, mask_ratio: float) -> float:
    """Matrix-multiply FLOPs of one pretraining sample, forward and backward (3x the forward),
    counted from the architecture: the patch embedding and encoder blocks for the visible tokens
    of the reconstruction and for every token of each augmented view (a, b for the sample-level
    InfoNCE, c for the patient-level one), the decoder, the projector. Elementwise work, norms and
    the losses are left out. HL(60, 2, 512) with config.yaml's settings: about 5.8 GFLOP."""
    n, d, leads, p = arch.n_patches, arch.width, arch.leads, arch.patch
    hidden, dd = int(d * arch.mlp_ratio), arch.decoder_width

    def blocks(tokens: int, width: int, mlp: int, depth: int) -> float:
        per_block = 2 * tokens * (4 * width * width + 2 * width * mlp) + 4 * tokens * tokens * width
        return depth * per_block

    embed = 2 * leads * p * d                                    # per token
    forward = 0.0
    if weights.get("recon"):
        k = int(round(n * (1 - mask_ratio)))
        forward += n * embed + blocks(k, d, hidden, arch.depth)
        forward += 2 * k * d * dd + blocks(n, dd, int(dd * arch.mlp_ratio), arch.decoder_depth)
        forward += 2 * n * dd * leads * p
    forward += len(contrastive_views(weights)) * (n * embed + blocks(n, d, hidden, arch.depth) + 2 * (d * d + d * arch.projection_dim))
    return 3.0 * forward


class ECGFoundationModel(nn.Module):
    """Encoder (patch embedding + blocks + norm), MAE decoder, and contrastive projection head."""

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        d, n = arch.width, arch.n_patches
        self.patch_embed = PatchEmbed1d(arch.leads, arch.patch, d)
        self.register_buffer("pos", sincos_positions(n, d)[None], persistent=False)
        self.blocks = nn.ModuleList(Block(d, arch.heads, arch.mlp_ratio) for _ in range(arch.depth))
        self.norm = nn.LayerNorm(d)
        # MAE decoder: lighter, its own width and depth
        dd = arch.decoder_width
        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.register_buffer("decoder_pos", sincos_positions(n, dd)[None], persistent=False)
        self.decoder_blocks = nn.ModuleList(Block(dd, max(1, dd // arch.head_dim), arch.mlp_ratio)
                                            for _ in range(arch.decoder_depth))
        self.decoder_norm = nn.LayerNorm(dd)
        self.decoder_pred = nn.Linear(dd, arch.leads * arch.patch)
        # projection head for InfoNCE (on the mean-pooled encoder output)
        self.projector = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, arch.projection_dim))
        self.apply(self._init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv1d):
            nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
            nn.init.zeros_(m.bias)

    # -- patches ---------------------------------------------------------------------------------
    def patchify(self, x):
        """[B, L, T] -> [B, N, L*P] (each patch: its 12 leads, lead-major)."""
        b, leads, t = x.shape
        p = self.arch.patch
        return x.view(b, leads, t // p, p).permute(0, 2, 1, 3).reshape(b, t // p, leads * p)

    def unpatchify(self, patches):
        """[B, N, L*P] -> [B, L, T]."""
        b, n, _ = patches.shape
        leads, p = self.arch.leads, self.arch.patch
        return patches.view(b, n, leads, p).permute(0, 2, 1, 3).reshape(b, leads, n * p)

    @staticmethod
    def random_masking(tokens, ratio: float, noise):
        """Keep a random ``1 - ratio`` of the tokens of each sample (argsort of noise).

        tokens [B, N, D], noise [B, N] uniform -> (kept [B, K, D], mask [B, N] with 1 = masked,
        restore [B, N] indices that undo the shuffle).
        """
        b, n, d = tokens.shape
        keep = int(round(n * (1 - ratio)))
        shuffle = torch.argsort(noise, dim=1)          # ascending: small noise is kept
        restore = torch.argsort(shuffle, dim=1)
        kept_idx = shuffle[:, :keep]
        kept = torch.gather(tokens, 1, kept_idx[..., None].expand(-1, -1, d))
        mask = torch.ones(b, n, device=tokens.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, restore)
        return kept, mask, restore

    # -- encoder / decoder -----------------------------------------------------------------------
    def forward_encoder(self, x, mask_ratio: float = 0.0, noise=None):
        """[B, L, T] -> (tokens [B, K, D] after the final norm, mask [B, N] or None, restore)."""
        x = crop_to_patches(x, self.arch.patch)
        tokens = self.patch_embed(x) + self.pos                      # [B, N, D]
        mask = restore = None
        if mask_ratio > 0:
            if noise is None:
                noise = torch.rand(tokens.shape[:2], device=tokens.device)
            tokens, mask, restore = self.random_masking(tokens, mask_ratio, noise)   # [B, K, D]
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens), mask, restore

    def forward_decoder(self, tokens, restore):
        """Visible tokens [B, K, D] -> predicted patches [B, N, L*P] for every position."""
        x = self.decoder_embed(tokens)                               # [B, K, Dd]
        b, k, dd = x.shape
        n = restore.shape[1]
        x = torch.cat([x, self.mask_token.expand(b, n - k, dd)], dim=1)
        x = torch.gather(x, 1, restore[..., None].expand(-1, -1, dd)) + self.decoder_pos
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))

    def embed(self, x):
        """The representation used downstream: mean of the encoder's patch tokens [B, D]."""
        tokens, _, _ = self.forward_encoder(x)
        return tokens.mean(dim=1)

    def project(self, x):
        """L2-normalised projection of the embedding, for InfoNCE [B, projection_dim]."""
        return F.normalize(self.projector(self.embed(x)), dim=-1)

    def encoder_state_dict(self) -> dict:
        """Encoder weights only (patch embedding, blocks, final norm): what is shipped."""
        keep = ("patch_embed.", "blocks.", "norm.")
        return {k: v for k, v in self.state_dict().items() if k.startswith(keep)}

