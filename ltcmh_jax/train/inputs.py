"""What a run trains on: the data set `--dataset` names, its split protocol and the split.

`load_dataset` dispatches on `TrainConfig.dataset`; `resolve_defaults` fills the split fields left
None from `ltcmh_jax.data.protocols`; `make_split` builds the query / database / training rows.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ltcmh_jax import data as data_lib
from ltcmh_jax.data import pipeline, protocols
from ltcmh_jax.train.config import TrainConfig


def load(config: TrainConfig) -> tuple[data_lib.MultiModalDataset, data_lib.Split | None]:
    """`(dataset, stored split)`: a `tfds:` data set brings its split (read through
    `data.pipeline.load_tfds`); the others have None, and `make_split` builds it."""
    if config.tfds_name:
        return pipeline.load_tfds(config.tfds_name, config.data_dir)
    return load_dataset(config), None


def load_dataset(config: TrainConfig) -> data_lib.MultiModalDataset:
    """The data set `config.dataset` names (raw images for cnnf, feature vectors for mlp)."""
    if config.tfds_name:
        return pipeline.load_tfds(config.tfds_name, config.data_dir)[0]
    image_source = "raw" if config.image_net == "cnnf" else "features"
    if config.dataset == "synthetic":
        sizes = {"num_samples": config.synthetic_samples} if config.synthetic_samples else {}
        return data_lib.make_synthetic_longtail(
            seed=config.data_seed, version=config.synthetic_version, **sizes
        )
    if config.dataset == "mdi_icons":
        return data_lib.load_mdi_icons(config.data_path or None)
    if config.dataset == "aloi":
        return data_lib.load_aloi(config.data_path)
    if config.dataset == "mfeat":
        return data_lib.load_mfeat(config.data_path)
    if config.dataset == "mirflickr25k":
        return data_lib.load_mirflickr25k(config.data_dir, image_source=image_source)
    if config.dataset == "nuswide":
        return data_lib.load_nuswide(config.data_dir, image_source=image_source)
    return data_lib.load_npz(config.data_path)


def resolve_defaults(config: TrainConfig, num_samples: int, num_labels: int) -> TrainConfig:
    """Fills split fields left None from the data set's defaults.

    synthetic: `data.SYNTHETIC_SPLIT`; mirflickr25k / nuswide: `data.protocols` (Table 1 for the
    long-tail split, DCMH's sizes for the balanced one); npz: 2000 queries (or a tenth of the
    data when smaller), and z1, imbalance_factor must be given. Head labels: 14 (Flickr) and 15
    (NUS-WIDE) as in the paper's Fig. 2, else 60% of the labels.
    """
    if config.tfds_name:
        # The stored split fixes the sizes; only the head labels are left to choose.
        return dataclasses.replace(config, num_head=_num_head(config, num_labels))
    if config.dataset == "synthetic":
        defaults = dict(data_lib.SYNTHETIC_SPLIT)
    elif config.dataset == "mdi_icons" and config.split == "longtail":
        defaults = dict(data_lib.MDI_ICONS_SPLIT)
    elif config.dataset == "aloi" and config.split == "longtail":
        defaults = dict(data_lib.ALOI_SPLIT)
    elif config.dataset == "mfeat" and config.split == "longtail":
        defaults = dict(data_lib.MFEAT_SPLIT)
    else:
        defaults = protocols.split_protocol(config.dataset, config.split)
    defaults.setdefault("num_query", min(2000, max(1, num_samples // 10)))
    updates = {}
    if config.num_query is None:
        updates["num_query"] = int(defaults["num_query"])
    num_query = updates.get("num_query", config.num_query)
    if num_query >= num_samples:
        raise ValueError(
            f"--num_query: {num_query} queries leave no database in a data set of "
            f"{num_samples} samples"
        )
    if config.split == "longtail":
        for name in ("z1", "imbalance_factor"):
            if getattr(config, name) is None:
                if name not in defaults:
                    raise ValueError(
                        f"--{name}: required for --split=longtail on --dataset={config.dataset}"
                    )
                updates[name] = defaults[name]
    elif config.num_train is None:
        updates["num_train"] = int(defaults.get("num_train", min(10000, num_samples - num_query)))
    updates["num_head"] = _num_head(config, num_labels)
    return dataclasses.replace(config, **updates)


def _num_head(config: TrainConfig, num_labels: int) -> int:
    if config.num_head is None:
        head = protocols.NUM_HEAD.get(config.dataset, round(protocols.HEAD_SHARE * num_labels))
        return int(min(max(head, 1), num_labels - 1)) if num_labels > 1 else 1
    if config.num_head >= num_labels:
        raise ValueError(
            f"--num_head: {config.num_head} head labels leave no tail among {num_labels} labels"
        )
    return config.num_head


def make_split(config: TrainConfig, dataset) -> data_lib.Split:
    """The query / database / training rows of `config.split` (after `resolve_defaults`)."""
    if config.split == "longtail":
        return data_lib.longtail_split(
            dataset.labels,
            z1=config.z1,
            imbalance_factor=config.imbalance_factor,
            num_query=config.num_query,
            seed=config.seed,
        )
    return data_lib.balanced_split(
        dataset.labels, num_query=config.num_query, num_train=config.num_train, seed=config.seed
    )


def check_label_coverage(labels: np.ndarray, source: str) -> None:
    """Refuses samples without a label and labels without a sample.

    A sample with no label is relevant to no query (its AP is 0 as a query, and as a training
    row its similarity row is all 0); a label with no sample has no prototype (J1) and no
    Hausdorff distance (Eq. 4). DCMH's releases of both data sets hold neither, so rather than
    dropping rows (which would shift every index of a split) the data is refused.

    Raises:
      ValueError: one line naming `source`, the row or label, and how many there are.
    """
    labels = np.asarray(labels)
    empty_rows = np.flatnonzero(~labels.any(axis=1))
    if empty_rows.size:
        raise ValueError(
            f"{source}: labels: {empty_rows.size} sample(s) have no label (first: row "
            f"{int(empty_rows[0])}); remove them (DCMH's data sets keep labelled samples only)"
        )
    empty_labels = np.flatnonzero(~labels.any(axis=0))
    if empty_labels.size:
        raise ValueError(
            f"{source}: labels: {empty_labels.size} label(s) have no sample (first: column "
            f"{int(empty_labels[0])}); remove those columns"
        )
