"""Atomic file writes: the one writer behind every file the project writes (results, metrics,
codes, the Hamming index). A reader sees the old file or the new one, never half of one.

Only the standard library and NumPy, so any module may use it without an import cycle.
"""

from __future__ import annotations

import json
import math
import os
import tempfile

import numpy as np


def json_safe(value):
    """`value` with NumPy scalars as Python numbers and non-finite floats as None."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def write_atomic(path: str | os.PathLike, write, *, suffix: str = "") -> None:
    """Calls `write(stream)` on a temporary file next to `path`, fsyncs it and renames it onto
    `path`; on failure (disk full, killed mid-write) the old file is left as it was and the
    temporary one removed.

    Raises:
      OSError: naming `path`, when the write or the rename fails.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise OSError(f"{path}: cannot write ({error.strerror or error})") from error
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)


def write_json_atomic(path: str, payload) -> None:
    """`payload` as JSON in `path`, atomically (`write_atomic`)."""
    text = json.dumps(json_safe(payload), indent=2, sort_keys=True) + "\n"
    write_atomic(path, lambda stream: stream.write(text.encode()), suffix=".json")


def write_lines_atomic(path: str, rows: list[dict]) -> None:
    """`rows` as JSON lines in `path`, atomically."""
    text = "".join(json.dumps(json_safe(row), sort_keys=True) + "\n" for row in rows)
    write_atomic(path, lambda stream: stream.write(text.encode()), suffix=".jsonl")


def save_npz_atomic(path: str, arrays: dict[str, np.ndarray]) -> None:
    """`arrays` as an uncompressed .npz in `path`, atomically."""
    write_atomic(path, lambda stream: np.savez(stream, **arrays), suffix=".npz")
