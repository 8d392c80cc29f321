"""Model and objectives against hand-computed cases."""
import math

import pytest
import torch

from ecgfm.model import Architecture, ECGFoundationModel, crop_to_patches, fit_length
from ecgfm.objectives import (UncertaintyWeights, hybrid_loss, info_nce, reconstruction_loss)


def small(patch=125, **kw):
    return ECGFoundationModel(Architecture(patch=patch, depth=2, width=32, head_dim=16, decoder_width=16,
                                           decoder_depth=1, projection_dim=8, **kw))


def test_patch_geometry():
    assert fit_length(2500, 60) == 2460 and fit_length(2500, 125) == 2500 and fit_length(2500, 250) == 2500
    x = torch.arange(2500.0).view(1, 1, 2500)
    assert crop_to_patches(x, 60)[0, 0, 0].item() == 20 and crop_to_patches(x, 60).shape[-1] == 2460
    assert small(60).arch.n_patches == 41 and small(250).arch.n_patches == 10


def test_patchify_round_trip_and_layout():
    model = small(125)
    x = torch.randn(2, 12, 2500)
    p = model.patchify(x)
    assert p.shape == (2, 20, 12 * 125)
    assert torch.equal(p[1, 3, 125 * 5 : 125 * 6], x[1, 5, 375:500])    # patch 3, lead 5
    assert torch.equal(model.unpatchify(p), x)


@pytest.mark.parametrize("ratio", [0.5, 0.75, 0.9])
def test_masking_keeps_the_configured_ratio_and_encoder_sees_only_unmasked(ratio):
    model = small(125)
    x = torch.randn(3, 12, 2500)
    noise = torch.rand(3, 20)
    tokens, mask, restore = model.forward_encoder(x, ratio, noise)
    keep = round(20 * (1 - ratio))
    assert tokens.shape == (3, keep, 32)
    assert (mask.sum(1) == 20 - keep).all()
    # the kept patches are those with the smallest noise, and only they reach the encoder:
    for b in range(3):
        kept = set(torch.argsort(noise[b])[:keep].tolist())
        assert kept == set(torch.nonzero(mask[b] == 0).flatten().tolist())
    x2 = x.clone()
    masked_patch = int(torch.nonzero(mask[0] == 1).flatten()[0])
    x2[0, :, masked_patch * 125 : (masked_patch + 1) * 125] += 100.0      # change a masked patch
    tokens2, _, _ = model.forward_encoder(x2, ratio, noise)
    assert torch.allclose(tokens, tokens2, atol=1e-6)                       # the encoder never saw it
    pred = model.forward_decoder(tokens, restore)
    assert pred.shape == (3, 20, 12 * 125)


def test_reconstruction_loss_counts_masked_patches_only():
    pred = torch.zeros(1, 4, 6)
    target = torch.tensor([[[1.0] * 6, [2.0] * 6, [3.0] * 6, [4.0] * 6]])
    mask = torch.tensor([[0.0, 1.0, 0.0, 1.0]])
    assert reconstruction_loss(pred, target, mask, leads=2).item() == pytest.approx(3.0)   # (2 + 4) / 2
    # equation 1 as written: the sum over the ECG's masked values, 6 x 2 + 6 x 4
    assert reconstruction_loss(pred, target, mask, leads=2, reduction="sum").item() == pytest.approx(36.0)
    # two ECGs: the mean over the batch of each one's sum (36 and 6 x 1 + 6 x 3 = 24)
    pred2, target2 = torch.zeros(2, 4, 6), torch.cat([target, target])
    mask2 = torch.tensor([[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]])
    assert reconstruction_loss(pred2, target2, mask2, reduction="sum").item() == pytest.approx(30.0)
    with pytest.raises(ValueError, match="unknown reconstruction reduction"):
        reconstruction_loss(pred, target, mask, reduction="median")


def test_info_nce_matches_a_hand_computed_value():
    s = 1 / math.sqrt(2)
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[s, s], [0.0, 1.0]])
    tau = 0.5
    # row 0 of z1: sims with z2 = [s, 0]; row 1: [s, 1]. Columns (z2 -> z1): row 0: [s, s]; row 1: [0, 1]
    def ce(logits, target):
        return -logits[target] + math.log(sum(math.exp(v) for v in logits))
    l12 = (ce([s / tau, 0.0], 0) + ce([s / tau, 1 / tau], 1)) / 2
    l21 = (ce([s / tau, s / tau], 0) + ce([0.0, 1 / tau], 1)) / 2
    assert info_nce(z1, z2, tau).item() == pytest.approx((l12 + l21) / 2, rel=1e-6)


def test_hybrid_is_the_weighted_sum_of_its_parts():
    parts = {"recon": torch.tensor(0.3), "patient": torch.tensor(2.0), "sample": torch.tensor(1.5)}
    assert hybrid_loss(parts, {"recon": 1, "patient": 1, "sample": 1}).item() == pytest.approx(3.8)
    assert hybrid_loss(parts, {"recon": 2, "patient": 0.5, "sample": 0}).item() == pytest.approx(1.6)
    learned = UncertaintyWeights(["recon", "patient", "sample"])
    with torch.no_grad():
        learned.log_vars.copy_(torch.tensor([0.0, math.log(2.0), 0.0]))
    expected = 0.3 + 2.0 / 2 + math.log(2.0) + 1.5
    assert learned(parts).item() == pytest.approx(expected, rel=1e-6)


def test_patch_embedding_is_the_convolution_it_stands_for():
    """The embedding multiplies patches by the Conv1d kernel instead of calling the convolution:
    the same numbers and gradients (so saved encoders stay valid)."""
    model = small(125)
    conv = model.patch_embed.proj
    x = torch.randn(3, 12, 2500, requires_grad=True)
    ours = model.patch_embed(x)
    reference = conv(x).transpose(1, 2)
    assert ours.shape == (3, 20, 32) and torch.allclose(ours, reference, atol=1e-5)
    g_ours = torch.autograd.grad(ours.square().sum(), [conv.weight, x])
    g_ref = torch.autograd.grad(reference.square().sum(), [conv.weight, x])
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)
    model60, x60 = small(60), torch.randn(2, 12, 2460)    # patch 60: 41 patches of the cropped record
    assert torch.allclose(model60.patch_embed(x60), model60.patch_embed.proj(x60).transpose(1, 2), atol=1e-5)


def test_balanced_hybrid_loss_weighs_each_objective_by_its_own_scale():
    """loss_balance running_mean: each part over its running mean, so a part of 0.1 and one of 3
    count alike in equation 3; the running mean is a buffer (checkpointed) updated in training."""
    from ecgfm.pretrain import PARTS, PretrainObjective
    model = small(125)
    settings = {"weights": {"recon": 1.0, "patient": 1.0, "sample": 1.0}, "loss_balance": "running_mean",
                "loss_balance_momentum": 0.5}
    objective = PretrainObjective(model, settings).train()
    first = {"recon": torch.tensor(0.1, requires_grad=True), "patient": torch.tensor(3.0), "sample": torch.tensor(2.0)}
    parts = objective._balanced(first)
    assert all(torch.isclose(v, torch.tensor(1.0)) for v in parts.values())        # the first step: each / itself
    second = objective._balanced({"recon": torch.tensor(0.3), "patient": torch.tensor(1.0), "sample": torch.tensor(2.0)})
    assert torch.allclose(objective.loss_scale, torch.tensor([0.2, 2.0, 2.0]))       # 0.5 * old + 0.5 * new
    assert torch.isclose(second["recon"], torch.tensor(1.5)) and torch.isclose(second["patient"], torch.tensor(0.5))
    parts["recon"].backward()
    assert torch.isclose(first["recon"].grad, torch.tensor(10.0))                   # d(L / 0.1) / dL, scale detached
    assert "loss_scale" in objective.state_dict() and len(PARTS) == 3
    objective.eval()
    objective._balanced({"recon": torch.tensor(5.0), "patient": torch.tensor(5.0), "sample": torch.tensor(5.0)})
    assert torch.allclose(objective.loss_scale, torch.tensor([0.2, 2.0, 2.0]))       # not updated outside training


def test_training_flops_per_sample_counts_the_matrix_products_by_hand():
    from ecgfm.model import Architecture, training_flops_per_sample
    arch = Architecture(patch=250, depth=1, width=4, head_dim=4, mlp_ratio=1.0, leads=2, n_samples=2500,
                        decoder_width=2, decoder_depth=1, projection_dim=2)
    # 10 patches, 2 visible at mask 0.8. Forward: patch embedding of all 10 tokens 10*2*(2*250)*4
    # = 40,000; one block on 2 tokens 2*2*(4*16 + 2*16) + 4*2*2*4 = 448; decoder embedding 2*2*4*2
    # = 32; a decoder block on 10 tokens 2*10*(4*4 + 2*4) + 4*10*10*2 = 1,280; prediction
    # 2*10*2*2*250 = 20,000. Backward twice the forward.
    gl = {"recon": 1.0, "patient": 0.0, "sample": 0.0}
    assert training_flops_per_sample(arch, gl, 0.8) == 3 * 61_760
    # CL: views a, b and c, each 40,000 + a block on 10 tokens 2*10*96 + 4*100*4 = 3,520 + the
    # projector 2*(16 + 8) = 48
    cl = {"recon": 0.0, "patient": 1.0, "sample": 1.0}
    assert training_flops_per_sample(arch, cl, 0.8) == 3 * 3 * 43_568
    hl = {"recon": 1.0, "patient": 1.0, "sample": 1.0}
    assert training_flops_per_sample(arch, hl, 0.8) == 3 * (61_760 + 3 * 43_568)
    # the paper's HL(60, 2, 512) with config.yaml's settings: 133 encoder tokens, about 5.8 GFLOP
    paper = Architecture(patch=60, depth=2, width=512)
    assert 5.7e9 < training_flops_per_sample(paper, hl, 0.75) < 6.0e9
