"""int8 rounding: GPTQ against round-to-nearest, and the choice of layers kept in float32."""

from __future__ import annotations

import numpy as np
import pytest

from deploy.agent import AgentStep
from deploy.quantize import plan_int8, quantize_rows
from deploy.verify import sample_inputs
from tests.deploy.helpers import decisive_policy


@pytest.mark.parametrize("seed", range(5))
def test_gptq_moves_a_layers_outputs_less_than_rounding_to_nearest(seed):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(24, 24))  # correlated inputs, as a layer's inputs are
    calibration, held_out = (rng.normal(size=(n, 24)) @ mixing for n in (400, 400))
    weights = rng.normal(size=(10, 24)) * rng.uniform(0.1, 3.0, size=(10, 1))
    rtn_q, rtn_scale = quantize_rows(weights)
    gptq_q, gptq_scale = quantize_rows(weights, calibration.T @ calibration)
    np.testing.assert_array_equal(rtn_scale, gptq_scale)  # the same grid, rounded differently
    assert np.abs(gptq_q.astype(int) - rtn_q).max() >= 1 and np.abs(gptq_q).max() <= 127

    def output_error(q, scale):
        return np.mean((held_out @ (q * scale[:, None]).T - held_out @ weights.T) ** 2)

    assert output_error(gptq_q, gptq_scale) < 0.8 * output_error(rtn_q, rtn_scale)


def test_layers_stay_in_float32_only_as_far_as_the_target_needs():
    step = AgentStep(decisive_policy("gru", (3, 5, 5), 3, perturb=0.02), 4)
    calibration, selection = sample_inputs(step, 128, 1), sample_inputs(step, 300, 2)
    relaxed = plan_int8(step, calibration, selection, target=0.0)
    assert relaxed.float_modules == () and relaxed.agreement > 0.9
    strict = plan_int8(step, calibration, selection, target=1.0)
    used = set(relaxed.hessians)
    assert strict.agreement == 1.0 and set(strict.float_modules) <= used
    # keeping every layer in float32 gives the float policy exactly, so a target of 1 is always reached
    assert 0 < len(strict.float_modules) <= len(used)
