"""Tests of ltcmh_jax/train/inputs.py: the data set's protocol defaults and their checks."""

import pytest

from ltcmh_jax.data import SYNTHETIC_SPLIT, protocols
from ltcmh_jax.train import TrainConfig, resolve_defaults


def test_defaults_follow_the_data_set():
    flickr = resolve_defaults(TrainConfig(dataset="mirflickr25k", data_dir="x"), 20015, 24)
    assert (flickr.z1, flickr.imbalance_factor, flickr.num_query, flickr.num_head) == (
        3000,
        50.0,
        2000,
        14,
    )
    nus = resolve_defaults(
        TrainConfig(dataset="nuswide", data_dir="x", split="balanced"), 195834, 21
    )
    # DCMH's NUS-WIDE protocol: 2100 queries, 10500 training samples (docs/DESIGN.md, Data).
    assert (nus.num_query, nus.num_train, nus.num_head, nus.z1) == (2100, 10500, 15, None)
    nus_longtail = resolve_defaults(TrainConfig(dataset="nuswide", data_dir="x"), 195834, 21)
    assert (nus_longtail.num_query, nus_longtail.z1) == (2000, 5000)
    assert protocols.split_protocol("nuswide", "balanced") == protocols.BALANCED["nuswide"]
    synthetic = resolve_defaults(TrainConfig(), 12000, 24)
    assert synthetic.z1 == SYNTHETIC_SPLIT["z1"] and synthetic.num_head == 14


def test_num_query_larger_than_the_data_is_refused():
    with pytest.raises(ValueError, match="--num_query"):
        resolve_defaults(TrainConfig(num_query=5000), 5000, 24)
    with pytest.raises(ValueError, match="--num_head"):
        resolve_defaults(TrainConfig(num_head=24), 5000, 24)
    with pytest.raises(ValueError, match="--z1"):
        resolve_defaults(TrainConfig(dataset="npz", data_path="x.npz"), 5000, 24)
