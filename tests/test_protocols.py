"""Tests of ltcmh_jax/data/protocols.py: the split sizes of the paper and DCMH, and the builders."""

import pytest

from ltcmh_jax.data import protocols
from ltcmh_jax.data.builders import LongtailMirflickr25k, LongtailNuswide


def test_the_numbers_are_table_1_and_dcmh():
    assert protocols.split_protocol("mirflickr25k", "longtail") == {
        "z1": 3000,
        "imbalance_factor": 50.0,
        "num_query": 2000,
    }
    assert protocols.split_protocol("nuswide", "longtail")["z1"] == 5000
    assert protocols.split_protocol("mirflickr25k", "balanced") == {
        "num_query": 2000,
        "num_train": 10000,
    }
    assert protocols.split_protocol("nuswide", "balanced") == {
        "num_query": 2100,
        "num_train": 10500,
    }
    assert protocols.split_protocol("npz", "longtail") == {}
    with pytest.raises(ValueError, match="--split"):
        protocols.split_protocol("nuswide", "zipf")


@pytest.mark.parametrize(
    "builder, dataset", [(LongtailMirflickr25k, "mirflickr25k"), (LongtailNuswide, "nuswide")]
)
def test_the_builders_use_the_same_numbers(builder, dataset):
    for config in builder.BUILDER_CONFIGS:
        expected = protocols.split_protocol(dataset, config.protocol)
        assert {name: getattr(config, name) for name in expected} == expected, config.name
