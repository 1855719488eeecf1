"""MAPPO losses against element-by-element references; inactive steps contribute nothing."""

import math

import pytest
import torch

from marl.losses import (
    categorical_log_prob_entropy,
    clipped_policy_loss,
    clipped_value_loss,
    mappo_loss,
    normalize_advantages,
)


def random_batch(seed, shape=(4, 3, 2)):
    g = torch.Generator().manual_seed(seed)
    return {
        "log_probs": torch.randn(shape, generator=g) * 0.3 - 1.5,
        "old_log_probs": torch.randn(shape, generator=g) * 0.3 - 1.5,
        "advantages": torch.randn(shape, generator=g),
        "values": torch.randn(shape, generator=g),
        "old_values": torch.randn(shape, generator=g),
        "targets": torch.randn(shape, generator=g),
        "entropy": torch.rand(shape, generator=g),
        "active": torch.rand(shape, generator=g) < 0.7,
    }


def test_policy_loss_matches_loop():
    b = random_batch(0)
    loss, kl, clip_fraction = clipped_policy_loss(
        b["log_probs"], b["old_log_probs"], b["advantages"], b["active"], 0.2
    )
    terms, kls, clipped = [], [], []
    for lp, olp, adv, act in zip(
        *(b[k].flatten().tolist() for k in ("log_probs", "old_log_probs", "advantages", "active")),
        strict=True,
    ):
        if not act:
            continue
        ratio = math.exp(lp - olp)
        terms.append(-min(ratio * adv, min(max(ratio, 0.8), 1.2) * adv))
        kls.append(ratio - 1 - (lp - olp))
        clipped.append(abs(ratio - 1) > 0.2)
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    assert kl.item() == pytest.approx(sum(kls) / len(kls), rel=1e-5)
    assert clip_fraction.item() == pytest.approx(sum(clipped) / len(clipped))


@pytest.mark.parametrize("huber_delta", [None, 0.5])
@pytest.mark.parametrize("clip", [None, 0.2])
def test_value_loss_matches_loop(clip, huber_delta):
    b = random_batch(1)

    def error_loss(e):
        if huber_delta is None or abs(e) <= huber_delta:
            return 0.5 * e * e
        return huber_delta * (abs(e) - 0.5 * huber_delta)

    loss = clipped_value_loss(b["values"], b["old_values"], b["targets"], b["active"], clip, huber_delta)
    terms = []
    columns = (b[k].flatten().tolist() for k in ("values", "old_values", "targets", "active"))
    for v, ov, t, act in zip(*columns, strict=True):
        if not act:
            continue
        unclipped = error_loss(t - v)
        if clip is None:
            terms.append(unclipped)
        else:
            clipped_v = ov + min(max(v - ov, -clip), clip)
            terms.append(max(unclipped, error_loss(t - clipped_v)))
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def total(b, **overrides):
    b = {**b, **overrides}
    return mappo_loss(
        b["log_probs"],
        b["old_log_probs"],
        b["entropy"],
        b["advantages"],
        b["values"],
        b["old_values"],
        b["targets"],
        b["active"],
        clip=0.2,
        value_clip=0.2,
        huber_delta=None,
        value_coef=0.5,
        entropy_coef=0.01,
    )


def test_inactive_steps_change_nothing_and_get_no_gradient():
    b = random_batch(2)
    keys = ("log_probs", "old_log_probs", "advantages", "values", "old_values", "targets", "entropy")
    garbage = {**b, **{k: torch.where(b["active"], b[k], torch.full_like(b[k], 1e6)) for k in keys}}
    assert total(garbage).total.item() == pytest.approx(total(b).total.item(), rel=1e-6)
    log_probs = b["log_probs"].clone().requires_grad_()
    values = b["values"].clone().requires_grad_()
    total(b, log_probs=log_probs, values=values).total.backward()
    assert not log_probs.grad[~b["active"]].any() and not values.grad[~b["active"]].any()
    assert log_probs.grad[b["active"]].abs().sum() > 0


def test_total_combines_the_terms():
    b = random_batch(3)
    terms = total(b)
    expected = terms.policy + 0.5 * terms.value - 0.01 * terms.entropy
    assert terms.total.item() == pytest.approx(expected.item())


def test_clipping_stops_the_gradient_beyond_the_trust_region():
    """A positive advantage with a ratio already above 1 + clip gives no incentive to grow further."""
    log_probs = torch.tensor([math.log(1.5)], requires_grad=True)
    active = torch.ones(1, dtype=torch.bool)
    loss, _, _ = clipped_policy_loss(log_probs, torch.zeros(1), torch.ones(1), active, 0.2)
    loss.backward()
    assert log_probs.grad.item() == 0.0


def test_advantage_normalization_uses_active_steps_only():
    advantages = torch.tensor([1.0, 3.0, 100.0, 5.0])
    active = torch.tensor([True, True, False, True])
    normalized = normalize_advantages(advantages, active)
    assert normalized[2].item() == 0.0
    torch.testing.assert_close(normalized[active].mean(), torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(normalized[active].std(unbiased=False), torch.tensor(1.0), atol=1e-5, rtol=0)


def test_log_prob_and_entropy_match_torch_categorical():
    logits = torch.randn(6, 5)
    actions = torch.randint(0, 5, (6,))
    log_prob, entropy = categorical_log_prob_entropy(logits, actions)
    dist = torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(log_prob, dist.log_prob(actions))
    torch.testing.assert_close(entropy, dist.entropy())
