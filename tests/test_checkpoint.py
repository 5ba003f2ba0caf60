"""Tests of ltcmh_jax/checkpoint.py: round trip, retention, fallback past an unreadable step."""

import glob
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from ltcmh_jax.checkpoint import Checkpointer, abstract_like


class _Net(nnx.Module):
    def __init__(self, rngs):
        self.image_net = nnx.Linear(3, 4, rngs=rngs)
        self.text_net = nnx.Linear(4, 2, rngs=rngs)


def _state(scale: float = 1.0):
    _, params_x, params_y = nnx.split(
        _Net(nnx.Rngs(0)), nnx.PathContains("image_net"), nnx.PathContains("text_net")
    )
    optimizer = optax.sgd(optax.linear_schedule(0.1, 0.0, 10))
    return {
        "params_x": jax.tree.map(lambda x: x * scale, params_x),
        "params_y": params_y,
        "opt_x": optimizer.init(params_x),
        "buffer": jnp.full((5, 2), scale),
        "key": jax.random.key_data(jax.random.key(3)),
    }


SPLIT = {"train": np.arange(5), "query": np.array([7, 9])}


def _same(first, second):
    return all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True)
    )


def test_round_trip_restores_state_split_and_meta(tmp_path):
    checkpointer = Checkpointer(str(tmp_path / "checkpoints"), max_to_keep=2)
    state = _state(2.0)
    checkpointer.save(3, state, SPLIT, {"epoch": 3, "config": {"bits": 16}})
    epoch, restored, split, meta = checkpointer.restore_latest(abstract_like(_state()))
    assert epoch == 3
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    assert _same(restored, state)
    np.testing.assert_array_equal(split["query"], SPLIT["query"])
    assert meta == {"epoch": 3, "config": {"bits": 16}}
    assert checkpointer.read_meta(3) == meta
    assert checkpointer.read_meta(4) is None
    checkpointer.close()


def test_keeps_only_the_newest(tmp_path):
    checkpointer = Checkpointer(str(tmp_path), max_to_keep=2)
    for epoch in (1, 2, 3):
        checkpointer.save(epoch, _state(epoch), SPLIT, {"epoch": epoch})
    assert checkpointer.all_epochs() == [2, 3]
    assert checkpointer.latest_epoch() == 3


def test_empty_directory_restores_nothing(tmp_path):
    assert Checkpointer(str(tmp_path)).restore_latest(abstract_like(_state())) is None


def _corrupt(directory, epoch):
    for path in glob.glob(os.path.join(directory, str(epoch), "state", "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "wb") as stream:
                stream.write(b"garbage")


def test_unreadable_latest_falls_back_with_a_warning(tmp_path, caplog):
    directory = str(tmp_path)
    checkpointer = Checkpointer(directory, max_to_keep=3)
    checkpointer.save(1, _state(1.0), SPLIT, {"epoch": 1})
    checkpointer.save(2, _state(2.0), SPLIT, {"epoch": 2})
    _corrupt(directory, 2)
    reader = Checkpointer(directory, max_to_keep=3)
    with caplog.at_level(logging.WARNING):
        epoch, restored, _, meta = reader.restore_latest(abstract_like(_state()))
    assert epoch == 1 and meta == {"epoch": 1}
    assert _same(restored, _state(1.0))
    assert any(os.path.join(directory, "2") in record.getMessage() for record in caplog.records)
    # The good one survives, and the unreadable step is replaced when its epoch is saved again.
    reader.save(2, _state(5.0), SPLIT, {"epoch": 2})
    assert reader.restore_latest(abstract_like(_state()))[0] == 2
    assert os.path.isdir(os.path.join(directory, "1"))


def test_all_unreadable_is_an_error_not_a_fresh_start(tmp_path):
    directory = str(tmp_path)
    checkpointer = Checkpointer(directory)
    checkpointer.save(1, _state(), SPLIT, {"epoch": 1})
    _corrupt(directory, 1)
    with pytest.raises(RuntimeError, match="none of the checkpoints"):
        Checkpointer(directory).restore_latest(abstract_like(_state()))


def test_error_summary_drops_the_bound_method_repr_and_adds_the_cause():
    from ltcmh_jax.checkpoint import error_summary

    try:
        try:
            raise ValueError("DATA_LOSS: corrupt chunk d/629c")
        except ValueError as cause:
            raise Exception(
                "Encountered error while reading array index: (slice(0, 512, 1),). See full "
                "TensorStore details: <bound method pybind11_detail_function_record_v1_system>"
            ) from cause
    except Exception as error:  # noqa: BLE001
        summary = error_summary(error)
    assert summary == (
        "Exception: Encountered error while reading array index: (slice(0, 512, 1),).; "
        "caused by ValueError: DATA_LOSS: corrupt chunk d/629c"
    )
