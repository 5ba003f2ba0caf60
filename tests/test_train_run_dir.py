"""Tests of ltcmh_jax/train/run_dir.py: the data fingerprint (atomic writes: test_faults.py)."""

import dataclasses

from conftest import TINY

from ltcmh_jax.train import load_dataset
from ltcmh_jax.train.run_dir import data_fingerprint


def test_data_fingerprint_tells_other_data_apart():
    dataset = load_dataset(dataclasses.replace(TINY, synthetic_samples=300))
    same = load_dataset(dataclasses.replace(TINY, synthetic_samples=300))
    assert data_fingerprint(dataset) == data_fingerprint(same)
    labels = dataset.labels.copy()
    labels[0] = 1.0 - labels[0]
    relabelled = type(dataset)(dataset.image, dataset.text, labels, dataset.label_names)
    text = dataset.text.copy()
    text[5, 0] += 1.0
    retexted = type(dataset)(dataset.image, text, dataset.labels, dataset.label_names)
    fingerprints = {data_fingerprint(d) for d in (dataset, relabelled, retexted)}
    assert len(fingerprints) == 3
