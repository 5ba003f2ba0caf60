"""The split protocols of the paper and of DCMH, in one place.

Long-tail (LtCMH, AAAI 2023, Table 1): 2000 queries, the rest the database, a Zipf training set
with z_1 samples of the most frequent label and imbalance factor z_1 / z_c = 50. Balanced (DCMH,
CVPR 2017, Sec. 4.1, which LtCMH's Table 3 follows): MIRFlickr-25K 2000 queries and 10000 random
training samples, NUS-WIDE 2100 queries and 10500 training samples (docs/DESIGN.md, Data).
Head labels for head/tail MAP: the paper's Fig. 2 (14 of Flickr's 24, 15 of NUS-WIDE's 21).
"""

from __future__ import annotations

LONGTAIL = {
    "mirflickr25k": {"z1": 3000, "imbalance_factor": 50.0, "num_query": 2000},
    "nuswide": {"z1": 5000, "imbalance_factor": 50.0, "num_query": 2000},
}
BALANCED = {
    "mirflickr25k": {"num_query": 2000, "num_train": 10000},
    "nuswide": {"num_query": 2100, "num_train": 10500},
}
NUM_HEAD = {"mirflickr25k": 14, "nuswide": 15}
# Elsewhere: the first 60% of the labels (head to tail) are head, about Flickr's 14 of 24.
HEAD_SHARE = 0.6


def split_protocol(dataset: str, split: str) -> dict:
    """The protocol's split sizes of `dataset` ("mirflickr25k", "nuswide") for `split`
    ("longtail", "balanced"); an empty dict for a data set without one."""
    if split not in ("longtail", "balanced"):
        raise ValueError(f"--split: must be longtail or balanced, got {split!r}")
    table = LONGTAIL if split == "longtail" else BALANCED
    return dict(table.get(dataset, {}))
