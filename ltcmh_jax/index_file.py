"""The `HammingIndex` file: packed codes with a versioned header and a sha256, written atomically.

Layout, all little-endian:
  version 2: magic 8s | version u32 | bits u32 | num_words u32 | mode u32 | count u64 |
             substrings u32 | reserved u32                                          (40 bytes)
  version 1: magic 8s | version u32 | bits u32 | num_words u32 | reserved u32 | count u64 (32)
  then count * num_words uint64 words, and the sha256 of header + words (32 bytes).
`mode` indexes `index.MODES` and `substrings` is a forced m (0: chosen from n); version 1 files
read as mode 0 ("auto"). The multi-index tables are not stored: they are rebuilt from the codes.
"""

from __future__ import annotations

import hashlib
import os
import struct
from typing import NamedTuple

import numpy as np

from ltcmh_jax.files import write_atomic

MAGIC = b"LTCMHIDX"
VERSION = 2
_HEADERS = {1: struct.Struct("<8sIIIIQ"), 2: struct.Struct("<8sIIIIQII")}
_DIGEST_SIZE = 32


class StoredIndex(NamedTuple):
    """What a file holds: `words [count, num_words]` uint64 and the header fields."""

    words: np.ndarray
    bits: int
    mode: int
    num_substrings: int


def write(
    path: str | os.PathLike, *, words: np.ndarray, bits: int, mode: int, num_substrings: int
) -> None:
    """Writes format version 2 through the project's one atomic writer (`files.write_atomic`: a
    temporary file, fsynced, then renamed over `path`; removed if anything fails)."""
    path = os.fspath(path)
    num_words = (bits + 63) // 64
    header = _HEADERS[VERSION].pack(
        MAGIC, VERSION, bits, num_words, mode, words.shape[0], num_substrings, 0
    )
    payload = np.ascontiguousarray(words, dtype="<u8").tobytes()
    digest = hashlib.sha256(header + payload).digest()

    def write_parts(stream):
        stream.write(header)
        stream.write(payload)
        stream.write(digest)

    write_atomic(path, write_parts, suffix=".hidx")


def read(path: str | os.PathLike) -> StoredIndex:
    """Reads format version 1 or 2.

    Raises:
      ValueError: naming the file, when it is not an index file, has an unknown format version,
        a corrupt header, is truncated or padded, or fails its checksum.
    """
    path = os.fspath(path)
    with open(path, "rb") as stream:
        data = stream.read()
    if len(data) < 12 or data[:8] != MAGIC:
        raise ValueError(f"{path}: not a HammingIndex file (bad magic or too short)")
    (version,) = struct.unpack_from("<I", data, 8)
    if version not in _HEADERS:
        supported = ", ".join(map(str, _HEADERS))
        raise ValueError(
            f"{path}: HammingIndex format version {version}; this reader supports {supported}"
        )
    header = _HEADERS[version]
    if len(data) < header.size:
        raise ValueError(f"{path}: truncated or padded HammingIndex file: {len(data)} bytes")
    if version == 1:
        _, _, bits, num_words, _, count = header.unpack_from(data)
        mode, num_substrings = 0, 0
    else:
        _, _, bits, num_words, mode, count, num_substrings, _ = header.unpack_from(data)
    if bits < 1 or num_words != (bits + 63) // 64:
        raise ValueError(f"{path}: corrupt header (k={bits} with {num_words} words per code)")
    expected = header.size + 8 * count * num_words + _DIGEST_SIZE
    if len(data) != expected:
        raise ValueError(
            f"{path}: truncated or padded HammingIndex file: {len(data)} bytes, expected "
            f"{expected} for {count} codes of k={bits}"
        )
    body = data[:-_DIGEST_SIZE]
    if hashlib.sha256(body).digest() != data[-_DIGEST_SIZE:]:
        raise ValueError(f"{path}: checksum mismatch, the HammingIndex file is corrupt")
    words = np.frombuffer(body, dtype="<u8", offset=header.size).astype(np.uint64)
    return StoredIndex(words.reshape(count, num_words), bits, mode, num_substrings)
