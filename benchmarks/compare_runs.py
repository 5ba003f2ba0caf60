r"""Compares two runs' outputs: every array of codes.npz bit for bit, and the MAP values of
results.json exactly.

  python -m benchmarks.compare_runs /tmp/ref/main /tmp/arch/main [/tmp/ref/dcmh /tmp/arch/dcmh ...]

Prints one line per pair and exits 1 when any pair differs.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


def compare(reference: str, candidate: str) -> list[str]:
    """The differences between two run directories (empty when the codes are bit-identical and
    every `map_*` value of results.json is equal)."""
    problems = []
    with (
        np.load(os.path.join(reference, "codes.npz")) as old,
        np.load(os.path.join(candidate, "codes.npz")) as new,
    ):
        if set(old.files) != set(new.files):
            problems.append(f"codes.npz keys {sorted(old.files)} vs {sorted(new.files)}")
        for name in sorted(set(old.files) & set(new.files)):
            if old[name].dtype != new[name].dtype or not np.array_equal(old[name], new[name]):
                problems.append(f"codes.npz[{name}] differs")
    results = []
    for directory in (reference, candidate):
        with open(os.path.join(directory, "results.json")) as stream:
            results.append(json.load(stream))
    maps = [
        {k: v for k, v in r.items() if k.startswith("map_") or k == "chance_map"} for r in results
    ]
    if maps[0] != maps[1]:
        problems.append(f"MAP {maps[0]} vs {maps[1]}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) < 2 or len(argv) % 2:
        sys.exit("usage: python -m benchmarks.compare_runs REF NEW [REF NEW ...]")
    failed = False
    for reference, candidate in zip(argv[::2], argv[1::2], strict=True):
        problems = compare(reference, candidate)
        failed |= bool(problems)
        status = "identical" if not problems else "DIFFERENT: " + "; ".join(problems)
        with open(os.path.join(candidate, "results.json")) as stream:
            maps = {
                k: round(v, 6)
                for k, v in json.load(stream).items()
                if k in ("map_i2t", "map_t2i", "map_i2i")
            }
        print(f"{reference} vs {candidate}: {status} {maps}")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
