"""Data files inside the `mvcluster==1.16` wheel (fetched with `pip download --no-deps
mvcluster==1.16`, never installed): its `examples/custom_data/<name>/` folders hold ALOI
(`data.aloi`) and the UCI multiple-features digits (`data.mfeat`) as header-less CSVs.

`WheelFolder` reads one such folder from the wheel itself, from the extracted wheel, or from a
folder holding the files; every error names the file.
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np

GET_THE_WHEEL = (
    "get the wheel with `pip download --no-deps mvcluster==1.16` (do not install it) and pass "
    "the .whl, its extracted folder, or an .npz of image/text/labels"
)


class WheelFolder:
    """The files of the wheel's `folder` (e.g. `examples/custom_data/aloi`) under `path`: the
    .whl, the extracted wheel, or a folder holding the files; opened as text streams by name."""

    def __init__(self, path: str, folder: str):
        self.path = path
        self.folder = folder
        self._zip = None
        if os.path.isdir(path):
            nested = os.path.join(path, folder)
            self._folder = nested if os.path.isdir(nested) else path
        else:
            try:
                self._zip = zipfile.ZipFile(path)
            except (OSError, zipfile.BadZipFile) as error:
                raise ValueError(f"{path}: not a readable wheel (zip) file ({error})") from None

    def where(self, name: str) -> str:
        """How an error names file `name`: `wheel:folder/name` or the file's path."""
        if self._zip is not None:
            return f"{self.path}:{self.folder}/{name}"
        return os.path.join(self._folder, name)

    def open(self, name: str):
        if self._zip is not None:
            member = f"{self.folder}/{name}"
            if member not in self._zip.namelist():
                raise ValueError(f"{self.path}: no {member} in the wheel; {GET_THE_WHEEL}")
            return io.TextIOWrapper(self._zip.open(member), encoding="ascii")
        where = self.where(name)
        if not os.path.isfile(where):
            raise FileNotFoundError(f"{where}: no such file; {GET_THE_WHEEL}")
        return open(where, encoding="ascii")

    def close(self):
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> WheelFolder:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def read_view(source: WheelFolder, name: str) -> np.ndarray:
    """`[n, d]` float64 from a header-less comma-separated file."""
    try:
        with source.open(name) as stream:
            view = np.loadtxt(stream, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise ValueError(f"{source.where(name)}: not a numeric CSV matrix ({error})") from None
    if not np.isfinite(view).all():
        row = int(np.flatnonzero(~np.isfinite(view).all(axis=1))[0])
        raise ValueError(f"{source.where(name)}: non-finite value in row {row}")
    return view


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """`[n, num_classes]` float32 with a 1 in column `labels[i]` of row `i`."""
    matrix = np.zeros((labels.shape[0], num_classes), dtype=np.float32)
    matrix[np.arange(labels.shape[0]), labels] = 1.0
    return matrix
