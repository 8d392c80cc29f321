"""Each augmentation does what it says to its input."""
import torch

from ecgfm.augment import (amplitude_scale, baseline_wander, gaussian_noise, lead_dropout, make_view,
                           random_shift, time_mask)

CFG = {"shift_fraction": 0.1, "scale_range": [0.8, 1.2], "noise_std_mv": 0.02, "wander_mv": 0.1,
       "lead_dropout": 0.1, "time_mask_fraction": 0.1}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def ecg(b=8):
    return torch.randn(b, 12, 2500, generator=gen(99))


def test_shift_is_a_circular_shift_within_bounds():
    x = ecg()
    y = random_shift(x, gen(), 0.1)
    for b in range(8):
        shifts = [s for s in range(-250, 251) if torch.equal(torch.roll(x[b], s, dims=-1), y[b])]
        assert len(shifts) == 1


def test_amplitude_scale_is_one_factor_per_ecg_in_range():
    x = ecg()
    ratio = amplitude_scale(x, gen(), 0.8, 1.2) / x
    per = ratio.view(8, -1)
    assert torch.allclose(per, per[:, :1].expand_as(per), atol=1e-5)
    assert ((per[:, 0] >= 0.8) & (per[:, 0] <= 1.2)).all()


def test_gaussian_noise_has_the_configured_std():
    x = torch.zeros(16, 12, 2500)
    assert abs(gaussian_noise(x, gen(), 0.05).std().item() - 0.05) < 0.002


def test_baseline_wander_is_slow_and_bounded():
    x = torch.zeros(8, 12, 2500)
    w = baseline_wander(x, gen(), 0.1, fs=250, max_hz=0.5)
    assert w.abs().max() <= 0.1 + 1e-6
    spectrum = torch.fft.rfft(w, dim=-1).abs().pow(2).sum((0, 1))
    freqs = torch.fft.rfftfreq(2500, 1 / 250)
    assert spectrum[freqs > 1.0].sum() < 0.05 * spectrum.sum()        # energy below 1 Hz


def test_lead_dropout_zeroes_whole_leads_never_all():
    x = ecg(64)
    y = lead_dropout(x, gen(), 0.5)
    zeroed = (y == 0).all(-1)
    kept = (y == x).all(-1)
    assert (zeroed | kept).all() and zeroed.any()
    assert (~zeroed).any(1).all()
    x_all = ecg(4)
    assert (~(lead_dropout(x_all, gen(), 0.999) == 0).all(-1)).any(1).all()


def test_time_mask_zeroes_one_window_on_all_leads():
    x = ecg() + 5.0                                   # no natural zeros
    y = time_mask(x, gen(), 0.1)
    zero_cols = (y == 0).all(1)                       # [B, T]
    for b in range(8):
        idx = torch.nonzero(zero_cols[b]).flatten()
        assert len(idx) <= 250
        if len(idx):
            assert (idx[-1] - idx[0] + 1) == len(idx)   # one contiguous window
    assert torch.equal(y[~(y == 0)], x[~(y == 0)])


def test_views_are_reproducible_from_the_seed():
    x = ecg()
    assert torch.equal(make_view(x, gen(5), CFG, 250), make_view(x, gen(5), CFG, 250))
    assert not torch.equal(make_view(x, gen(5), CFG, 250), make_view(x, gen(6), CFG, 250))
