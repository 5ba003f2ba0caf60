"""Tests for the optimiser chains and the step budget."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ltcmh_jax import optimizers


def rates_of(transformation, steps, grad=1.0):
    """The update of a scalar parameter under a constant gradient, step by step."""
    params = jnp.zeros(())
    state = transformation.init(params)
    updates = []
    for _ in range(steps):
        update, state = transformation.update(jnp.asarray(grad), state, params)
        updates.append(float(update))
    return np.asarray(updates)


def test_sgd_is_the_papers_epoch_linear_decay():
    sgd = optimizers.make_optimizer("sgd", rate=0.1, epochs=3, steps_per_epoch=2, final_rate=0.0)
    np.testing.assert_allclose(-rates_of(sgd, 6), [0.1, 0.1, 0.05, 0.05, 0.0, 0.0], atol=1e-7)


def test_adam_warms_up_then_decays_to_one_percent():
    adam = optimizers.make_optimizer(
        "adam", rate=1e-2, epochs=10, steps_per_epoch=10, warmup_steps=10
    )
    steps = -rates_of(adam, 100)
    # Adam's update under a constant gradient is the rate itself.
    assert steps[0] == 0.0
    np.testing.assert_allclose(steps[10], 1e-2, rtol=1e-3)
    assert np.all(np.diff(steps[:11]) > 0) and np.all(np.diff(steps[10:]) < 0)
    np.testing.assert_allclose(steps[-1], 1e-4, rtol=0.05)


def test_clipping_bounds_every_update():
    clipped = optimizers.make_optimizer("sgd", rate=1.0, epochs=1, steps_per_epoch=5, clip_norm=2.0)
    tree = {"a": jnp.full((3,), 1e6), "b": jnp.full((4,), -1e6)}
    update, _ = clipped.update(tree, clipped.init(tree), tree)
    norm = optax.tree.norm(update)
    np.testing.assert_allclose(norm, 2.0, rtol=1e-5)
    unclipped = optimizers.make_optimizer("sgd", rate=1.0, epochs=1, steps_per_epoch=5)
    update, _ = unclipped.update(tree, unclipped.init(tree), tree)
    assert float(optax.tree.norm(update)) > 1e6


@pytest.mark.parametrize("scale", [1e-3, 1e6])
def test_clip_by_global_norm_is_optaxs_as_one_factor(scale):
    tree = {"a": jnp.linspace(-1.0, 2.0, 7) * scale, "b": jnp.full((2, 3), -0.5 * scale)}
    ours, theirs = optimizers.clip_by_global_norm(2.0), optax.clip_by_global_norm(2.0)
    got, state = jax.jit(ours.update)(tree, ours.init(tree))
    want, want_state = theirs.update(tree, theirs.init(tree))
    assert jax.tree.structure(state) == jax.tree.structure(want_state)
    for name in tree:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6)


def test_bad_names_are_one_line_errors_naming_the_flag():
    with pytest.raises(ValueError, match="--optimizer"):
        optimizers.make_optimizer("rmsprop", rate=1.0, epochs=1, steps_per_epoch=1)
    with pytest.raises(ValueError, match="--clip_norm"):
        optimizers.make_optimizer("adam", rate=1.0, epochs=1, steps_per_epoch=1, clip_norm=-1)


def test_weight_decay_is_adamw_decoupled_from_the_gradient():
    """With a zero gradient AdamW still shrinks a parameter by rate * decay per step (plain Adam
    would not move it); the paper's SGD ignores it."""
    adamw = optimizers.make_optimizer(
        "adam", rate=1e-2, epochs=1, steps_per_epoch=10, weight_decay=0.5
    )
    params = jnp.full((3,), 2.0)
    update, _ = adamw.update(jnp.zeros(3), adamw.init(params), params)
    np.testing.assert_allclose(update, -1e-2 * 0.5 * 2.0, rtol=1e-6)
    adam = optimizers.make_optimizer("adam", rate=1e-2, epochs=1, steps_per_epoch=10)
    update, _ = adam.update(jnp.zeros(3), adam.init(params), params)
    np.testing.assert_array_equal(update, 0.0)
    sgd = optimizers.make_optimizer(
        "sgd", rate=1.0, epochs=1, steps_per_epoch=1, weight_decay=0.1
    )  # the paper's SGD has no decay: the (default) setting does not change it
    update, _ = sgd.update(jnp.zeros(3), sgd.init(params), params)
    np.testing.assert_array_equal(update, 0.0)
    with pytest.raises(ValueError, match="--weight_decay"):
        optimizers.make_optimizer("adam", rate=1.0, epochs=1, steps_per_epoch=1, weight_decay=-1)


@pytest.mark.parametrize(
    ("epochs", "steps", "budget", "expected"),
    [(50, 21, 0, 50), (50, 21, 1000, 50), (50, 3, 1000, 334), (5, 1, 7, 7)],
)
def test_step_budget_raises_epochs_only_on_small_sets(epochs, steps, budget, expected):
    assert optimizers.epochs_for_step_budget(epochs, steps, budget) == expected


def test_adam_trains_a_badly_scaled_quadratic_that_sgd_at_the_same_rate_diverges_on():
    scales = jnp.array([1e-3, 1.0, 1e3])

    def loss(w):
        return jnp.sum(scales * (w - 1.0) ** 2)

    final = {}
    for name in ("adam", "sgd"):
        opt = optimizers.make_optimizer(
            name, rate=0.05, epochs=1, steps_per_epoch=400, final_rate=0.05
        )
        w = jnp.zeros(3)
        state = opt.init(w)
        for _ in range(400):
            update, state = opt.update(jax.grad(loss)(w), state, w)
            w = optax.apply_updates(w, update)
        final[name] = float(loss(w))
    start = float(loss(jnp.zeros(3)))
    assert final["adam"] < 0.01 * start
    # SGD's step on the 1e3 coordinate multiplies its error by |1 - 0.05 * 2e3| = 99 each step.
    assert not final["sgd"] < start
