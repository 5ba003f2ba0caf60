"""Bit-packed hash codes: `pack_codes`, `unpack_codes` and the validation every search runs.

Codes travel in one of two forms, told apart by dtype alone:
- {-1, +1} codes: a float or signed-integer array `[n, k]` whose entries are all -1 or +1
  (`sign` of a network output; a 0 from `sign(0)` is refused, not guessed).
- packed codes: uint64 words `[n, ceil(k / 64)]` from `pack_codes`; bit j of a code (1 for +1) is
  bit j % 64 of word j // 64 and the padding bits are 0. `pack_codes` returns a `PackedCodes`, an
  `np.ndarray` that also carries `bits` (= k). A plain uint64 array is read as packed with
  k = 64 * num_words, since k cannot be recovered from the words when k is not a multiple of 64.
Any other dtype (bool, unsigned bytes, ...) is refused with a ValueError.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ltcmh_jax import hamming

_WORD_BITS = 64


class PackedCodes(np.ndarray):
    """uint64 words `[n, ceil(bits / 64)]` with the code length `bits` attached.

    Row slices keep `bits`; anything that changes the number of words is caught by
    `as_packed_codes` the next time the array is used.
    """

    bits: int | None

    def __new__(cls, words, bits: int):
        words = np.ascontiguousarray(words, dtype=np.uint64)
        obj = words.view(cls)
        obj.bits = int(bits)
        return obj

    def __array_finalize__(self, obj):
        self.bits = getattr(obj, "bits", None)


class Codes(NamedTuple):
    """Validated packed codes: `words [n, num_words]` contiguous uint64 and the code length."""

    words: np.ndarray
    bits: int


def num_words(bits: int) -> int:
    """uint64 words per packed code of `bits` bits."""
    return (bits + _WORD_BITS - 1) // _WORD_BITS


def _pack_bits(bits_set: np.ndarray) -> np.ndarray:
    """`[n, b]` bool -> `[n, ceil(b / 64)]` uint64, bit j in word j // 64 at position j % 64."""
    num_rows, num_bits = bits_set.shape
    as_bytes = np.packbits(bits_set, axis=1, bitorder="little")
    padded = np.zeros((num_rows, 8 * num_words(num_bits)), np.uint8)
    padded[:, : as_bytes.shape[1]] = as_bytes
    # Little-endian words, so byte b of a row holds bits 8b..8b+7 on every host.
    return np.ascontiguousarray(padded.view("<u8").astype(np.uint64, copy=False))


def _validate_signed_codes(codes: np.ndarray, name: str) -> None:
    if codes.dtype == np.bool_ or not (
        np.issubdtype(codes.dtype, np.floating) or np.issubdtype(codes.dtype, np.signedinteger)
    ):
        raise ValueError(
            f"{name}: dtype {codes.dtype} is neither {{-1, +1}} codes (float or signed int) nor "
            "packed uint64 words from pack_codes"
        )
    if codes.ndim != 2 or codes.shape[1] == 0:
        raise ValueError(f"{name}: expected codes [n, k] with k >= 1, got shape {codes.shape}")
    bad = (codes != 1) & (codes != -1)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}: codes must be -1 or +1, found {codes[row, column].item()!r} at row {row}, "
            f"column {column}"
        )


def pack_codes(codes) -> PackedCodes:
    """Packs {-1, +1} codes `[n, k]` into uint64 words `[n, ceil(k / 64)]` (+1 -> bit set).

    Already-packed input (uint64) is returned validated, unchanged.

    Raises:
      ValueError: when the codes hold anything other than -1 and +1, or are not `[n, k]`.
    """
    if isinstance(codes, np.ndarray) and codes.dtype == np.uint64:
        words, bits = as_packed_codes(codes, name="codes")
        return PackedCodes(words, bits)
    codes = np.asarray(codes)
    _validate_signed_codes(codes, "codes")
    return PackedCodes(_pack_bits(codes > 0), codes.shape[1])


def unpack_codes(packed, bits: int | None = None, *, dtype=np.float32) -> np.ndarray:
    """Inverse of `pack_codes`: `[n, bits]` {-1, +1} codes of `dtype`.

    `bits` defaults to the `PackedCodes.bits` of the input (64 * num_words for a plain array).
    """
    words, packed_bits = as_packed_codes(packed, name="packed", bits=bits)
    as_bytes = np.ascontiguousarray(words.astype("<u8", copy=False)).view(np.uint8)
    bits_set = np.unpackbits(as_bytes, axis=1, count=packed_bits, bitorder="little")
    return np.where(bits_set.astype(bool), 1, -1).astype(dtype)


def as_packed_codes(codes, *, name: str = "codes", bits: int | None = None) -> Codes:
    """Validates {-1, +1} or packed codes and returns them packed (see the module docstring).

    Args:
      codes: `[n, k]` {-1, +1} codes, or uint64 words `[n, ceil(k / 64)]`.
      name: names the argument in error messages.
      bits: k for plain uint64 input (overrides `PackedCodes.bits`); checked against the words.

    Raises:
      ValueError: naming `name`, for other dtypes or values, a bad shape, a word count that does not
        fit `bits`, set padding bits, or k > 32767.
    """
    if isinstance(codes, np.ndarray) and codes.dtype == np.uint64:
        if codes.ndim != 2 or codes.shape[1] == 0:
            raise ValueError(
                f"{name}: packed codes must be uint64 words [n, ceil(k / 64)], got shape "
                f"{codes.shape}"
            )
        if bits is None:
            bits = getattr(codes, "bits", None)
        if bits is None:
            bits = _WORD_BITS * codes.shape[1]
        bits = int(bits)
        if bits < 1 or num_words(bits) != codes.shape[1]:
            raise ValueError(
                f"{name}: {codes.shape[1]} uint64 words per code do not hold k={bits} bits "
                f"(need {num_words(max(bits, 1))})"
            )
        words = np.ascontiguousarray(codes.view(np.ndarray), dtype=np.uint64)
        spare = bits % _WORD_BITS
        if spare and codes.shape[0] and (words[:, -1] >> np.uint64(spare)).any():
            row = int(np.flatnonzero(words[:, -1] >> np.uint64(spare))[0])
            raise ValueError(
                f"{name}: row {row} has bits set beyond k={bits} (padding must be 0); were these "
                "codes packed with a different k?"
            )
    else:
        codes = np.asarray(codes)
        _validate_signed_codes(codes, name)
        if bits is not None and bits != codes.shape[1]:
            raise ValueError(f"{name}: codes have k={codes.shape[1]} bits, expected k={bits}")
        bits = codes.shape[1]
        words = _pack_bits(codes > 0)
    if bits > hamming.MAX_BITS:
        raise ValueError(f"{name}: k={bits} bits is above the supported {hamming.MAX_BITS}")
    return Codes(words, bits)


def bits_hint(codes) -> str:
    """The note to add to a k-mismatch error when k was guessed from a plain uint64 array."""
    if type(codes) is np.ndarray and codes.dtype == np.uint64:
        return " (a plain uint64 array is read as k = 64 * words; pass PackedCodes(words, bits))"
    return ""
