"""A 1D ResNet-50: the supervised convolutional baseline of Table 3.

ResNet-50's layout (He et al. 2016) with every 2D convolution made 1D: a stem (convolution
stride 2, max pool stride 2), then four stages of bottleneck blocks ([3, 4, 6, 3] blocks,
1x1 -> k -> 1x1 convolutions, expansion 4, stride 2 at the start of stages 2-4 on the k
convolution), batch norm, ReLU, and global average pooling. ``width`` is the stem's channel
count (64 in ResNet-50: 2048 pooled features); the demo uses a narrower one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ResNetArchitecture:
    layers: tuple = (3, 4, 6, 3)
    width: int = 64
    kernel_size: int = 3
    stem_kernel: int = 7
    leads: int = 12
    expansion: int = 4

    @property
    def features(self) -> int:
        return self.width * 2 ** (len(self.layers) - 1) * self.expansion

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, expansion: int, kernel: int, stride: int):
        super().__init__()
        cout = mid * expansion
        self.body = nn.Sequential(
            nn.Conv1d(cin, mid, 1, bias=False), nn.BatchNorm1d(mid), nn.ReLU(inplace=True),
            nn.Conv1d(mid, mid, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm1d(mid), nn.ReLU(inplace=True),
            nn.Conv1d(mid, cout, 1, bias=False), nn.BatchNorm1d(cout))
        nn.init.zeros_(self.body[-1].weight)     # each residual branch starts as the identity
        self.shortcut = nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
            nn.Conv1d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm1d(cout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class ResNet1d(nn.Module):
    def __init__(self, arch: ResNetArchitecture):
        super().__init__()
        self.arch = arch
        w = arch.width
        self.stem = nn.Sequential(
            nn.Conv1d(arch.leads, w, arch.stem_kernel, stride=2, padding=arch.stem_kernel // 2, bias=False),
            nn.BatchNorm1d(w), nn.ReLU(inplace=True), nn.MaxPool1d(3, stride=2, padding=1))
        blocks, cin = [], w
        for stage, n_blocks in enumerate(arch.layers):
            mid = w * 2 ** stage
            for i in range(n_blocks):
                blocks.append(Bottleneck(cin, mid, arch.expansion, arch.kernel_size,
                                         stride=2 if stage > 0 and i == 0 else 1))
                cin = mid * arch.expansion
        self.blocks = nn.Sequential(*blocks)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def embed(self, x):
        """[B, leads, T] -> globally average-pooled features [B, features]."""
        return self.blocks(self.stem(x)).mean(dim=-1)

    def forward(self, x):
        return self.embed(x)

    def encoder_state_dict(self) -> dict:
        """What a model folder ships: every weight and batch-norm statistic (a ResNet has no
        pretraining decoder to leave out)."""
        return self.state_dict()


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":      # python -m ecgfm.resnet1d: the size of the paper-scale model
    model = ResNet1d(ResNetArchitecture())
    print(f"1D-ResNet50: {parameter_count(model) / 1e6:.1f}M parameters, "
          f"{model.arch.features} features; output {tuple(model.embed(torch.zeros(1, 12, 2500)).shape)}")
