"""Build and query a `HammingIndex` from the command line.

  python -m experiments.index build --codes=db_codes.npy --out=db.index
  python -m experiments.index search --index=db.index --queries=query_codes.npy --k=10

Code files are `.npy`, or `.npz` with `--key` naming the array (optional when it holds one array):
{-1, +1} codes `[n, k]`, or packed uint64 words with `--bits`. `search` prints one tab-separated
line per neighbour: query, rank, id, distance. `id` is the neighbour's row in the database codes
the index was built from; with `--ids=runs/x/codes.npz` it is the data set's row instead (the
archive's `db_indices`, what `train_and_evaluate` writes next to the codes). Any bad input ends
with one line naming the file or flag and a non-zero exit status.
"""

import sys
import zipfile

import numpy as np
from absl import app, flags

from ltcmh_jax.index import HammingIndex, PackedCodes

_CODES = flags.DEFINE_string("codes", None, "build: the database codes (.npy or .npz).")
_OUT = flags.DEFINE_string("out", None, "build: where to write the index.")
_INDEX = flags.DEFINE_string("index", None, "search: an index written by build.")
_QUERIES = flags.DEFINE_string("queries", None, "search: the query codes (.npy or .npz).")
_K = flags.DEFINE_integer("k", 10, "search: neighbours per query.")
_KEY = flags.DEFINE_string("key", None, "The array to read from an .npz file.")
_IDS = flags.DEFINE_string(
    "ids",
    None,
    "search: an .npz holding db_indices (a run's codes.npz), or an .npy of ids per database row: "
    "print those instead of the row of the database codes.",
)
_BITS = flags.DEFINE_integer(
    "bits", None, "Code length k of packed uint64 input (default 64 * words)."
)

_COMMANDS = ("build", "search")


def load_codes(path: str, *, key: str | None = None, bits: int | None = None):
    """Reads codes from `path` (.npy, or .npz and `key`); never unpickles. Errors name the file."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: cannot read codes ({error})") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            names = list(loaded.keys())
            if key is None and len(names) == 1:
                key = names[0]
            if key is None:
                raise ValueError(f"{path}: holds {len(names)} arrays; pass --key, one of {names}")
            if key not in names:
                raise ValueError(f"{path}: no array {key!r} (--key); it holds {names}")
            try:
                codes = loaded[key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
                raise ValueError(f"{path}: cannot read array {key!r} ({error})") from None
    else:
        codes = loaded
    if codes.dtype == np.uint64 and bits is not None and codes.ndim == 2:
        codes = PackedCodes(codes, bits)
    return codes


def ids_key(path: str) -> str | None:
    """`db_indices` in an .npz (a run's codes.npz); an .npy has no key."""
    return "db_indices" if path.endswith(".npz") else None


def _require(flag) -> str:
    if not flag.value:
        raise ValueError(f"--{flag.name} is required")
    return flag.value


def _build() -> None:
    codes_path = _require(_CODES)
    out = _require(_OUT)
    codes = load_codes(codes_path, key=_KEY.value, bits=_BITS.value)
    try:
        index = HammingIndex(codes)
    except ValueError as error:
        raise ValueError(f"{codes_path}: {error}") from None
    index.save(out)
    print(f"wrote {out}: {len(index)} codes of k={index.bits} bits")


def _search() -> None:
    index_path = _require(_INDEX)
    queries_path = _require(_QUERIES)
    if _K.value < 1:
        raise ValueError(f"--k must be a positive integer, got {_K.value}")
    index = HammingIndex.load(index_path)
    queries = load_codes(queries_path, key=_KEY.value, bits=_BITS.value)
    try:
        distances, ids = index.search(queries, _K.value)
    except ValueError as error:
        raise ValueError(f"{queries_path} against {index_path}: {error}") from None
    if _IDS.value:
        row_ids = np.asarray(load_codes(_IDS.value, key=ids_key(_IDS.value)))
        if row_ids.shape != (len(index),):
            raise ValueError(
                f"--ids: {_IDS.value} holds {row_ids.shape[0]} ids, the index {len(index)} rows"
            )
        ids = row_ids[ids]
    lines = ["query\trank\tid\tdistance"]
    for query in range(ids.shape[0]):
        for rank in range(ids.shape[1]):
            lines.append(f"{query}\t{rank}\t{ids[query, rank]}\t{distances[query, rank]}")
    print("\n".join(lines))


def main(argv):
    if len(argv) != 2 or argv[1] not in _COMMANDS:
        raise app.UsageError(f"expected one command, {' or '.join(_COMMANDS)}; got {argv[1:]}")
    try:
        _build() if argv[1] == "build" else _search()
    except (ValueError, OSError) as error:
        sys.exit(f"experiments.index {argv[1]}: error: {error}")


def run():
    """The console script (`pyproject.toml` [project.scripts])."""
    app.run(main)


if __name__ == "__main__":
    run()
