"""The optax chains that train each parameter group, and the step budget of a run.

Two recipes:
- "sgd": the paper's (and DCMH's) plain SGD, its rate decaying linearly per epoch from `rate`
  to `final_rate` (`epoch_linear_decay`); the real-data flagfiles keep it with the paper's rates.
- "adam": Adam with a linear warm-up over the first `warmup_steps` and a cosine decay to
  1% of `rate` at `total_steps`; the default recipe (docs/DESIGN.md, Training: SGD's rate had to
  be tuned per data set, diverged on three of four sets nobody tuned it on, and Adam at one rate
  trained all of them).
Both put `clip_by_global_norm(clip_norm)` (optax's, as one scalar factor) first when
`clip_norm > 0`, so no single step can move the parameters further than the clipped gradient
allows, whatever the loss does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "adam")
# Adam's cosine ends at this share of the peak rate rather than 0, so the last epochs still move.
_FINAL_SHARE = 0.01


def epoch_linear_decay(
    initial: float, final: float, *, epochs: int, steps_per_epoch: int
) -> optax.Schedule:
    """DCMH's schedule: constant within an epoch, linear from `initial` (first epoch) to `final`
    (last epoch), i.e. `np.linspace(initial, final, epochs)[epoch]` with epoch = count // steps."""
    last = max(epochs - 1, 1)

    def schedule(count):
        fraction = jnp.minimum(count // steps_per_epoch, epochs - 1) / last
        # Written as a blend so the last epoch gets exactly `final` in float32.
        return initial * (1 - fraction) + final * fraction

    return schedule


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """`optax.clip_by_global_norm` as one scalar factor: updates times min(1, max_norm / norm).

    The same clipping (to within a rounding of the factor) and the same (empty) state, but XLA
    folds a scalar multiply into each consumer of the gradient (Adam's two moments), where
    optax's per-entry divide, which XLA counts as expensive and does not duplicate, made it
    write the clipped gradient out in full first: one read and one write of the text net's
    45 MB kernel gradient per step less (docs/DESIGN.md, Training speed).
    """

    def update(updates, state, params=None):
        del params
        norm = optax.tree.norm(updates)
        scale = jnp.where(norm < max_norm, 1.0, max_norm / norm)
        return jax.tree.map(lambda leaf: leaf * scale.astype(leaf.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(
    name: str,
    *,
    rate: float,
    epochs: int,
    steps_per_epoch: int,
    final_rate: float = 1e-6,
    clip_norm: float = 0.0,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """One parameter group's optax chain (see the module docstring).

    Args:
      name: "sgd" or "adam".
      rate: the peak learning rate.
      epochs, steps_per_epoch: the run's length; `epochs * steps_per_epoch` steps in all.
      final_rate: SGD's rate in the last epoch (ignored by Adam, which ends at 1% of `rate`).
      clip_norm: global-norm clipping threshold of the gradient; 0 turns clipping off.
      warmup_steps: Adam's linear warm-up from 0 (ignored by SGD, which has none in the paper).
      weight_decay: decoupled weight decay (AdamW: each step shrinks the parameters by
        `schedule * weight_decay`); 0 is plain Adam. Ignored by SGD: the paper's recipe has none.

    Raises:
      ValueError: one line naming the flag (--optimizer, --clip_norm) for a bad value.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"--optimizer: must be one of {OPTIMIZERS}, got {name!r}")
    if not clip_norm >= 0:
        raise ValueError(f"--clip_norm: must be >= 0, got {clip_norm}")
    if not weight_decay >= 0:
        raise ValueError(f"--weight_decay: must be >= 0, got {weight_decay}")
    total_steps = max(1, epochs * steps_per_epoch)
    if name == "sgd":
        schedule = epoch_linear_decay(
            rate, final_rate, epochs=epochs, steps_per_epoch=steps_per_epoch
        )
        base = optax.sgd(schedule)
    else:
        warmup_steps = int(min(max(warmup_steps, 0), total_steps - 1))
        schedule = optax.warmup_cosine_decay_schedule(
            init_value=0.0 if warmup_steps else rate,
            peak_value=rate,
            warmup_steps=warmup_steps,
            decay_steps=total_steps,
            end_value=rate * _FINAL_SHARE,
        )
        base = (
            optax.adamw(schedule, weight_decay=weight_decay)
            if weight_decay
            else optax.adam(schedule)
        )
    if clip_norm > 0:
        return optax.chain(clip_by_global_norm(clip_norm), base)
    return base


def epochs_for_step_budget(epochs: int, steps_per_epoch: int, min_steps: int) -> int:
    """The epochs a run trains: `epochs`, raised until each phase takes at least `min_steps`
    optimisation steps (0: no budget). A 500-row training set gives 3 steps an epoch, 50 epochs
    150 steps: far too few for any optimiser, while a 20,000-row set gets 7,800 (DESIGN.md)."""
    if min_steps <= 0:
        return epochs
    return max(epochs, -(-min_steps // max(steps_per_epoch, 1)))
