"""ValueNorm: running statistics, masking, inverse maps, checkpoint round trip."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from marl.value_norm import ValueNorm


def test_statistics_converge_to_the_target_distribution():
    torch.manual_seed(0)
    norm = ValueNorm()
    for _ in range(200):
        norm.update(torch.randn(512) * 3.0 + 7.0)
    mean, var = norm.mean_var()
    assert abs(mean.item() - 7.0) < 0.1
    assert abs(var.sqrt().item() - 3.0) < 0.1
    normalized = norm.normalize(torch.randn(100_000) * 3.0 + 7.0)
    assert abs(normalized.mean().item()) < 0.05 and abs(normalized.std().item() - 1.0) < 0.05


def test_debiasing_makes_the_first_batch_exact():
    norm = ValueNorm()
    batch = torch.tensor([1.0, 2.0, 3.0, 10.0])
    norm.update(batch)
    mean, var = norm.mean_var()
    torch.testing.assert_close(mean.float(), batch.mean())
    torch.testing.assert_close(var.float(), batch.var(unbiased=False))


def test_masked_entries_are_ignored():
    masked, plain = ValueNorm(), ValueNorm()
    values = torch.tensor([1.0, 1000.0, 3.0])
    masked.update(values, torch.tensor([True, False, True]))
    plain.update(torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(masked.mean_var(), plain.mean_var())


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=20))
def test_denormalize_inverts_normalize(xs):
    norm = ValueNorm()
    norm.update(torch.tensor([5.0, -2.0, 40.0]))
    x = torch.tensor(xs, dtype=torch.float64)
    torch.testing.assert_close(norm.denormalize(norm.normalize(x)), x, rtol=1e-9, atol=1e-9)


def test_variance_is_floored():
    norm = ValueNorm(min_variance=1e-2)
    norm.update(torch.full((10,), 4.0))
    assert norm.mean_var()[1].item() == 1e-2


def test_state_dict_round_trip():
    norm = ValueNorm()
    norm.update(torch.arange(10.0))
    restored = ValueNorm()
    restored.load_state_dict(norm.state_dict())
    torch.testing.assert_close(restored.mean_var(), norm.mean_var())


def test_disabled_is_the_identity_even_after_updates():
    norm = ValueNorm(enabled=False)
    norm.update(torch.tensor([100.0, 300.0]))
    x = torch.tensor([1.0, -7.5])
    assert torch.equal(norm.normalize(x), x) and torch.equal(norm.denormalize(x), x)
