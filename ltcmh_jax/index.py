"""`HammingIndex`: exact Hamming k-NN and range search by linear scan or multi-index hashing.

Codes are {-1, +1} or packed (see `codes`); the packing names are re-exported here.
"""

from __future__ import annotations

import os

import numpy as np

from ltcmh_jax import hamming, index_file, multi_index
from ltcmh_jax.codes import (
    Codes,
    PackedCodes,
    as_packed_codes,
    bits_hint,
    num_words,
    pack_codes,
    unpack_codes,
)

__all__ = [
    "AUTO_MAX_K_FRACTION",
    "AUTO_MIN_CODES",
    "MODES",
    "Codes",
    "HammingIndex",
    "PackedCodes",
    "as_packed_codes",
    "auto_uses_multi_index",
    "bits_hint",
    "pack_codes",
    "unpack_codes",
]

MODES = ("auto", "linear", "multi_index")
# mode="auto" probes the multi-index from this many codes on and for k up to n times the fraction
# below. Measured (docs/SCALING.md, one thread): at 1e6 codes the multi-index is 1.6x faster for
# top-10 but 0.58x for top-100; at 1e7 10x and 5.7x; at 1e5 0.3-0.4x (the scan runs from cache).
AUTO_MIN_CODES = 1_000_000
AUTO_MAX_K_FRACTION = 1 / 32768
# A multi-index query that visits more than n / this many bucket entries is handed to the scan,
# so a query far from every code costs at most a fraction more than the scan.
_GIVE_UP_FRACTION = 8
# Tables are rebuilt when more than 1 / this of the codes were added after they were built.
_REBUILD_FRACTION = 4


def auto_uses_multi_index(num_codes: int, k: int) -> bool:
    """mode="auto"'s choice for a top-k search over n codes: the multi-index for n >=
    `AUTO_MIN_CODES` and k <= n * `AUTO_MAX_K_FRACTION`, else the scan."""
    return num_codes >= AUTO_MIN_CODES and k <= num_codes * AUTO_MAX_K_FRACTION


class HammingIndex:
    """Exact k-nearest-neighbour and range search over packed binary codes by Hamming distance.

    Two exact modes give identical results, ordered by distance, ties by id (the row number in
    insertion order):
    - "linear": a counting sort over the k + 1 possible distances of every code
      (`hamming.top_k_by_counting`), O(n) per query.
    - "multi_index": multi-index hashing (`multi_index`; Norouzi, Punjani and Fleet 2012),
      sub-linear per query when the neighbours are near; its tables, built on first use, hold
      `multi_index_bytes`: per code and substring a uint32 id plus a copy of the code for codes
      of up to 128 bits, so 4 + 8 ceil(k / 64) bytes times m (48 bytes per 64-bit code at m = 4,
      n = 1e7; 36 at m = 3, n = 1e8), plus 4 (2^s + 1) bytes of offsets per table.
    - "auto" (default): the multi-index when `auto_uses_multi_index(n, k)`, else the scan.
    Range search (`range_search`) follows the same rule with k = 1.
    """

    def __init__(
        self,
        codes,
        *,
        bits: int | None = None,
        mode: str = "auto",
        num_substrings: int | None = None,
    ):
        """Builds the index from `[n, k]` {-1, +1} or packed codes (n may be 0 for packed input).

        Args:
          mode: one of `MODES` (see the class docstring).
          num_substrings: m for the multi-index, 1..k; default from n and k
            (`multi_index.substring_count`).
        """
        words, self._bits = as_packed_codes(codes, name="codes", bits=bits)
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        if num_substrings is not None and (
            isinstance(num_substrings, bool)
            or not isinstance(num_substrings, int | np.integer)
            or not 1 <= num_substrings <= self._bits
            or -(-self._bits // num_substrings) > multi_index.MAX_SUBSTRING_BITS
        ):
            raise ValueError(
                f"num_substrings: expected an integer m in 1..{self._bits} with substrings of at "
                f"most {multi_index.MAX_SUBSTRING_BITS} bits, got {num_substrings!r}"
            )
        self._mode = mode
        self._forced_substrings = num_substrings
        self._words = words
        self._size = words.shape[0]
        self._tables: multi_index.Tables | None = None

    @property
    def bits(self) -> int:
        """k, the code length."""
        return self._bits

    @property
    def num_words(self) -> int:
        return num_words(self._bits)

    @property
    def mode(self) -> str:
        return self._mode

    def __len__(self) -> int:
        return self._size

    @property
    def words(self) -> np.ndarray:
        """The stored codes, `[len(self), num_words]` uint64 (a read-only view)."""
        view = self._words[: self._size]
        view.flags.writeable = False
        return view

    @property
    def num_substrings(self) -> int:
        """m, the substrings of the multi-index (forced, or chosen from the current n and k)."""
        if self._forced_substrings is not None:
            return self._forced_substrings
        return multi_index.substring_count(self._size, self._bits)

    @property
    def multi_index_bytes(self) -> int:
        """Bytes held by the multi-index tables (0 until a search builds them): 2^s + 1 offsets
        and n ids per substring table, uint32 below 2^32 codes."""
        return 0 if self._tables is None else self._tables.nbytes

    @property
    def multi_index_tables(self) -> multi_index.Tables | None:
        """The multi-index tables, None until a search (or `build_multi_index`) builds them."""
        return self._tables

    def uses_multi_index(self, k: int) -> bool:
        """Whether a top-`k` search probes the multi-index (mode and, for "auto", n and k)."""
        if self._mode == "auto":
            return auto_uses_multi_index(self._size, k)
        return self._mode == "multi_index"

    def build_multi_index(self) -> None:
        """Builds (or rebuilds) the multi-index tables over every stored code now."""
        self._tables = multi_index.build_tables(
            self._words[: self._size], self._bits, self.num_substrings
        )

    def _current_tables(self) -> multi_index.Tables:
        tables = self._tables
        if tables is None or _REBUILD_FRACTION * (self._size - tables.num_indexed) > max(
            tables.num_indexed, 1
        ):
            self.build_multi_index()
        return self._tables

    def _checked(self, codes, name: str) -> np.ndarray:
        words, bits = as_packed_codes(codes, name=name, bits=None)
        if bits != self._bits:
            raise ValueError(
                f"{name}: codes have k={bits} bits but the index holds k={self._bits}"
                + bits_hint(codes)
            )
        return words

    def add(self, codes) -> None:
        """Appends codes; their ids continue from `len(self)`. Amortised O(n) by doubling.

        Built multi-index tables are kept: a search scans the codes added since and rebuilds the
        tables once those are more than a quarter of the indexed ones.
        """
        words = self._checked(codes, "codes")
        needed = self._size + words.shape[0]
        if needed > self._words.shape[0]:
            grown = np.empty((max(needed, 2 * self._words.shape[0]), self.num_words), np.uint64)
            grown[: self._size] = self._words[: self._size]
            self._words = grown
        self._words[self._size : needed] = words
        self._size = needed

    def _give_up_budget(self) -> int:
        return max(4096, self._size // _GIVE_UP_FRACTION)

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest stored codes to each query.

        Args:
          queries: `[num_query, bits]` {-1, +1} or packed codes with the index's k.
          k: neighbours per query; more than `len(self)` returns all of them.

        Returns:
          `(distances [num_query, min(k, n)] int32, ids [num_query, min(k, n)] int64)`, sorted by
          distance, ties by id; the same in every mode.

        Raises:
          ValueError: for k < 1, an empty index, or queries whose code length differs (naming both).
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k: expected a positive integer, got {k!r}")
        query_words = self._checked(queries, "queries")
        if self._size == 0:
            raise ValueError("search: the index is empty")
        k = min(int(k), self._size)
        distances = np.empty((query_words.shape[0], k), np.int32)
        ids = np.empty((query_words.shape[0], k), np.int64)
        db_words = self._words[: self._size]
        pending = np.arange(query_words.shape[0])
        if self.uses_multi_index(k) and query_words.shape[0]:
            tables = self._current_tables()
            keys = np.empty((query_words.shape[0], k), np.int64)
            complete = multi_index.top_k(
                query_words,
                db_words,
                *tables[:5],
                tables.num_indexed,
                self._bits,
                self._give_up_budget(),
                keys,
            )
            distances[complete] = keys[complete] >> multi_index.ID_BITS
            ids[complete] = keys[complete] & multi_index.ID_MASK
            pending = np.flatnonzero(~complete)
        if pending.size == query_words.shape[0]:
            hamming.top_k_by_counting(query_words, db_words, self._bits, distances, ids)
        elif pending.size:
            pending_distances = np.empty((pending.size, k), np.int32)
            pending_ids = np.empty((pending.size, k), np.int64)
            hamming.top_k_by_counting(
                query_words[pending], db_words, self._bits, pending_distances, pending_ids
            )
            distances[pending] = pending_distances
            ids[pending] = pending_ids
        return distances, ids

    def range_search(self, queries, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every stored code within Hamming distance `radius` of each query.

        Args:
          queries: `[num_query, bits]` {-1, +1} or packed codes with the index's k.
          radius: 0..k, inclusive.

        Returns:
          `(offsets [num_query + 1] int64, distances [total] int32, ids [total] int64)`: query q's
          codes are `[offsets[q]:offsets[q + 1]]`, sorted by distance, ties by id; the same in
          every mode (the multi-index is used under the same rule as for top-1).
        """
        if isinstance(radius, bool) or not isinstance(radius, int | np.integer):
            raise ValueError(f"radius: expected an integer in 0..{self._bits}, got {radius!r}")
        if not 0 <= radius <= self._bits:
            raise ValueError(f"radius: expected an integer in 0..{self._bits}, got {radius!r}")
        query_words = self._checked(queries, "queries")
        radius = int(radius)
        num_query = query_words.shape[0]
        db_words = self._words[: self._size]
        counts = np.full(num_query, -1, np.int64)
        if self.uses_multi_index(1) and self._size and num_query:
            tables = self._current_tables()
            table_arguments = (*tables[:5], tables.num_indexed)
            counts = multi_index.count_within_radius(
                query_words, db_words, *table_arguments, radius, self._give_up_budget()
            )
        scanned = np.flatnonzero(counts < 0)
        if scanned.size:
            counts[scanned] = hamming.count_within_radius(query_words[scanned], db_words, radius)
        offsets = np.zeros(num_query + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        distances = np.empty(offsets[-1], np.int32)
        ids = np.empty(offsets[-1], np.int64)
        probed = np.setdiff1d(np.arange(num_query), scanned)
        if probed.size:
            multi_index.fill_within_radius(
                query_words, db_words, *table_arguments, radius, probed, offsets, distances, ids
            )
        if scanned.size:
            hamming.fill_within_radius(
                query_words[scanned], db_words, radius, offsets[scanned], distances, ids
            )
        return offsets, distances, ids

    def save(self, path: str | os.PathLike) -> None:
        """Writes the codes, the mode and a forced m to the versioned, checksummed format of
        `index_file` (atomically; the tables are rebuilt on first use after `load`)."""
        index_file.write(
            path,
            words=self._words[: self._size],
            bits=self._bits,
            mode=MODES.index(self._mode),
            num_substrings=self._forced_substrings or 0,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> HammingIndex:
        """Reads a file written by `save` (format version 2, or version 1: mode "auto").

        Raises:
          ValueError: naming the file, when it is not an index file, has an unknown format version,
            is truncated or padded, fails its checksum, or holds an unknown mode.
        """
        stored = index_file.read(path)
        if stored.mode >= len(MODES) or stored.num_substrings > stored.bits:
            raise ValueError(
                f"{os.fspath(path)}: corrupt header (mode {stored.mode}, "
                f"{stored.num_substrings} substrings)"
            )
        return cls(
            PackedCodes(stored.words, stored.bits),
            mode=MODES[stored.mode],
            num_substrings=stored.num_substrings or None,
        )
