"""Each augmentation does what it says to its input, as a pure function of its draws; the draws
come from the generator alone."""
import math

import torch

from ecgfm.augment import (CPU_BLOCK_ROWS, MASK_START, MASK_WIDTH, PER_LEAD, SCALE, SHIFT, add_noise, augment,
                           augment_batch, draw, draw_columns, drop_leads, lead_columns, mask_window, scale,
                           shift, wander)

CFG = {"shift_fraction": 0.1, "scale_range": [0.8, 1.2], "noise_std_mv": 0.02, "wander_mv": 0.1,
       "lead_dropout": 0.1, "time_mask_fraction": 0.1}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def ecg(b=8):
    return torch.randn(b, 12, 2500, generator=gen(99))


def test_shift_is_the_circular_shift_its_draw_picks():
    x = ecg(3)
    # 2 * 250 + 1 = 501 shifts: u = 0 -> -250, u = 250.5 / 501 -> 0, u just below 1 -> +250
    y = shift(x, torch.tensor([0.0, 250.5 / 501, 0.9999]), 0.1)
    for b, s in enumerate((-250, 0, 250)):
        assert torch.equal(y[b], torch.roll(x[b], s, dims=-1))
    z = shift(x, torch.rand(3, generator=gen()), 0.0)           # no shift configured: unchanged
    assert torch.equal(z, x)


def test_amplitude_scale_is_one_factor_per_ecg():
    x = ecg(2)
    y = scale(x, torch.tensor([0.0, 0.75]), 0.8, 1.2)
    assert torch.allclose(y[0], 0.8 * x[0]) and torch.allclose(y[1], 1.1 * x[1])


def test_gaussian_noise_has_the_configured_std():
    x = torch.zeros(16, 12, 2500)
    _, normal = draw(16, 12, 2500, gen())
    assert abs(add_noise(x, normal, 0.05).std().item() - 0.05) < 0.002


def test_baseline_wander_is_the_drawn_sinusoid():
    x = torch.zeros(1, 2, 2500)
    u_freq, u_phase, u_amp = torch.tensor([[0.5, 0.0]]), torch.tensor([[0.25, 0.0]]), torch.tensor([[1.0, 0.5]])
    w = wander(x, u_freq, u_phase, u_amp, 0.1, fs=250, max_hz=0.5)
    t = torch.arange(2500) / 250
    assert torch.allclose(w[0, 0], 0.1 * torch.sin(2 * math.pi * 0.25 * t + math.pi / 2), atol=1e-6)   # 0.25 Hz
    assert torch.allclose(w[0, 1], torch.zeros(2500), atol=1e-7)       # 0 Hz at phase 0: sin(0)


def test_baseline_wander_from_random_draws_is_slow_and_bounded():
    x = torch.zeros(8, 12, 2500)
    u = torch.rand((8, 3, 12), generator=gen())
    w = wander(x, u[:, 0], u[:, 1], u[:, 2], 0.1, fs=250, max_hz=0.5)
    assert w.abs().max() <= 0.1 + 1e-6
    spectrum = torch.fft.rfft(w, dim=-1).abs().pow(2).sum((0, 1))
    freqs = torch.fft.rfftfreq(2500, 1 / 250)
    assert spectrum[freqs > 1.0].sum() < 0.05 * spectrum.sum()        # energy below 1 Hz


def test_lead_dropout_zeroes_the_drawn_leads_never_all():
    x = ecg(2)[:, :3]
    y = drop_leads(x, torch.tensor([[0.05, 0.5, 0.09], [0.01, 0.02, 0.03]]), 0.1)
    assert torch.equal(y[0], torch.stack([torch.zeros(2500), x[0, 1], torch.zeros(2500)]))
    assert torch.equal(y[1], torch.stack([x[1, 0], torch.zeros(2500), torch.zeros(2500)]))   # all drawn: lead 0 kept


def test_time_mask_zeroes_the_drawn_window_on_all_leads():
    x = ecg(2) + 5.0                                   # no natural zeros
    # width 0.5 * 0.1 * 2500 = 125; start 0.5 * (2500 - 125 + 1) = 1188
    y = mask_window(x, torch.tensor([0.5, 0.0]), torch.tensor([0.5, 0.3]), 0.1)
    zero_cols = torch.nonzero((y[0] == 0).all(0)).flatten()
    assert zero_cols.tolist() == list(range(1188, 1188 + 125))
    assert torch.equal(y[0][:, :1188], x[0][:, :1188]) and torch.equal(y[0][:, 1313:], x[0][:, 1313:])
    assert torch.equal(y[1], x[1])                     # width 0: nothing masked


def test_the_uniform_table_has_a_column_for_each_draw():
    assert draw_columns(12) == 4 + 4 * 12 and len(PER_LEAD) == 4
    u = torch.arange(draw_columns(3), dtype=torch.float32)[None]
    assert [SHIFT, SCALE, MASK_WIDTH, MASK_START] == [0, 1, 2, 3]
    assert lead_columns(u, "wander_freq", 3).tolist() == [[4, 5, 6]]
    assert lead_columns(u, "dropout", 3).tolist() == [[13, 14, 15]]


def test_augment_applies_each_augmentation_with_its_own_columns():
    x = ecg(4)
    uniform, normal = draw(4, 12, 2500, gen(3))
    by_hand = shift(x, uniform[:, SHIFT], 0.1)
    by_hand = scale(by_hand, uniform[:, SCALE], 0.8, 1.2)
    by_hand = add_noise(by_hand, normal, 0.02)
    by_hand = wander(by_hand, *(lead_columns(uniform, n, 12) for n in PER_LEAD[:3]), 0.1, 250)
    by_hand = drop_leads(by_hand, lead_columns(uniform, "dropout", 12), 0.1)
    by_hand = mask_window(by_hand, uniform[:, MASK_WIDTH], uniform[:, MASK_START], 0.1)
    assert torch.equal(augment(x, uniform, normal, CFG, 250), by_hand)


def test_views_are_reproducible_from_the_seed():
    x = ecg()

    def view(seed):
        return augment(x, *draw(8, 12, 2500, gen(seed)), CFG, 250)
    assert torch.equal(view(5), view(5))
    assert not torch.equal(view(5), view(6))


def test_augmenting_in_blocks_gives_the_views_of_one_pass():
    n = 2 * CPU_BLOCK_ROWS + 5                       # two full blocks and a short one
    x = torch.randn(n, 12, 2500, generator=gen(1))
    uniform, normal = draw(n, 12, 2500, gen(2))
    assert torch.equal(augment_batch(x, uniform, normal, CFG, 250), augment(x, uniform, normal, CFG, 250))
