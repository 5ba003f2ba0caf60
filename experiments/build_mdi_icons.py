"""Builds `ltcmh_jax/data/assets/mdi_icons.npz` from the `@mdi/svg` npm tarball.

  cd /tmp && npm pack @mdi/svg@7.4.47
  python -m experiments.build_mdi_icons --tarball=/tmp/mdi-svg-7.4.47.tgz \
      --output=ltcmh_jax/data/assets/mdi_icons.npz

Reads `package/meta.json` and `package/svg/<name>.svg` straight from the tarball. Keeps the icons
with at least one tag (their tags are the labels); rasterises each icon's single path to a
32 x 32 alpha image with matplotlib's Agg renderer (the path parsed by `svgpath2mpl`, a pure-Python
wheel: `pip install svgpath2mpl==1.0.0`); builds a binary bag of words over names and aliases.
The output is a pure function of the tarball: the same bytes on every run.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tarfile
from collections.abc import Iterable, Sequence

import numpy as np
from absl import app, flags

RASTER_SIZE = 32
# MDI draws every icon in a 24 x 24 viewBox.
VIEWBOX_SIZE = 24
# A word must occur in this many icons to enter the vocabulary: a word of one icon is an
# identifier, not a feature shared with anything to retrieve.
MIN_ICONS_PER_WORD = 2

_META = "package/meta.json"
_SVG_DIR = "package/svg/"
_PATH_DATA = re.compile(r'<path\b[^>]*\bd="([^"]*)"')
# A closepath followed by a drawing command other than moveto.
_CLOSE_THEN_DRAW = re.compile(r"[Zz](?=\s*[^MmZz\s])")


@dataclasses.dataclass(frozen=True)
class Icon:
    """One icon of `meta.json` with its SVG path data (`d` attribute)."""

    name: str
    aliases: tuple[str, ...]
    tags: tuple[str, ...]
    path_data: str


def read_tagged_icons(tarball: str) -> list[Icon]:
    """The icons of an `@mdi/svg` tarball that carry at least one tag, sorted by name.

    Raises:
      FileNotFoundError: the tarball does not exist.
      ValueError: naming the tarball and member, for a missing `meta.json` or SVG, or an SVG
        without exactly one `<path d=...>`.
    """
    try:
        archive = tarfile.open(tarball, "r:*")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{tarball}: no such file; get it with `npm pack @mdi/svg@7.4.47`"
        ) from None
    except tarfile.TarError as error:
        raise ValueError(f"{tarball}: not a readable tarball ({error})") from None
    with archive:
        meta = json.loads(_read_member(archive, tarball, _META))
        icons = []
        for entry in sorted(meta, key=lambda item: item["name"]):
            if not entry.get("tags"):
                continue
            member = f"{_SVG_DIR}{entry['name']}.svg"
            paths = _PATH_DATA.findall(_read_member(archive, tarball, member))
            if len(paths) != 1:
                raise ValueError(f"{tarball}: {member} has {len(paths)} <path d=...>, expected 1")
            icons.append(
                Icon(
                    name=entry["name"],
                    aliases=tuple(entry.get("aliases", ())),
                    tags=tuple(entry["tags"]),
                    path_data=paths[0],
                )
            )
    return icons


def _read_member(archive: tarfile.TarFile, tarball: str, member: str) -> str:
    try:
        stream = archive.extractfile(member)
    except KeyError:
        stream = None
    if stream is None:
        raise ValueError(f"{tarball}: no file {member} in the tarball")
    return stream.read().decode("utf-8")


class Rasteriser:
    """Fills SVG path data in a 24 x 24 viewBox into a `[size, size]` uint8 alpha image.

    Keeps one Agg figure and swaps the patch, since building a figure costs far more than drawing
    a path. Agg antialiases edges, so alpha takes values between 0 and 255 on them.
    """

    def __init__(self, *, size: int = RASTER_SIZE):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if size < 1:
            raise ValueError(f"size: must be a positive pixel count, got {size}")
        figure = Figure(figsize=(1, 1), dpi=size)
        figure.patch.set_alpha(0)
        self._canvas = FigureCanvasAgg(figure)
        self._axes = figure.add_axes((0, 0, 1, 1))
        self._axes.set_axis_off()
        self._axes.set_xlim(0, VIEWBOX_SIZE)
        # SVG's y axis points down.
        self._axes.set_ylim(VIEWBOX_SIZE, 0)

    def __call__(self, path_data: str) -> np.ndarray:
        from matplotlib.patches import PathPatch
        from svgpath2mpl import parse_path

        path = parse_path(explicit_moveto_after_close(path_data))
        patch = PathPatch(path, facecolor="black", edgecolor="none", linewidth=0)
        self._axes.add_patch(patch)
        try:
            self._canvas.draw()
            return np.asarray(self._canvas.buffer_rgba())[:, :, 3].copy()
        finally:
            patch.remove()


def explicit_moveto_after_close(path_data: str) -> str:
    """`path_data` with an explicit `M x y` wherever a drawing command follows a closepath.

    SVG starts such a command at the closed subpath's first point; svgpath2mpl 1.0.0 fails on it
    (one MDI icon, google-ads, has `ZL`). The point is the closepath vertex svgpath2mpl emits.
    """
    from svgpath2mpl import parse_path

    match = _CLOSE_THEN_DRAW.search(path_data)
    while match is not None:
        x, y = parse_path(path_data[: match.end()]).vertices[-1]
        path_data = (
            f"{path_data[: match.end()]}M{float(x)!r} {float(y)!r}{path_data[match.end() :]}"
        )
        match = _CLOSE_THEN_DRAW.search(path_data, match.end())
    return path_data


def icon_words(icon: Icon) -> set[str]:
    """Lower-cased words of the icon's name and aliases, split on '-'."""
    return {word for text in (icon.name, *icon.aliases) for word in text.lower().split("-") if word}


def bag_of_words(
    documents: Sequence[Iterable[str]], *, min_documents: int = MIN_ICONS_PER_WORD
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Binary bag of words over the words in at least `min_documents` documents.

    Returns:
      `([n, v] bool, v words sorted)`: row `i` marks the vocabulary words of document `i`.
    """
    sets = [set(words) for words in documents]
    counts: dict[str, int] = {}
    for words in sets:
        for word in words:
            counts[word] = counts.get(word, 0) + 1
    vocabulary = tuple(sorted(word for word, count in counts.items() if count >= min_documents))
    column = {word: index for index, word in enumerate(vocabulary)}
    matrix = np.zeros((len(sets), len(vocabulary)), dtype=bool)
    for row, words in enumerate(sets):
        matrix[row, [column[word] for word in words if word in column]] = True
    return matrix, vocabulary


def tag_matrix(icons: Sequence[Icon]) -> tuple[np.ndarray, tuple[str, ...]]:
    """`([n, c] uint8 multi-hot, c tag names sorted)` over the tags the icons carry."""
    names = tuple(sorted({tag for icon in icons for tag in icon.tags}))
    column = {name: index for index, name in enumerate(names)}
    matrix = np.zeros((len(icons), len(names)), dtype=np.uint8)
    for row, icon in enumerate(icons):
        matrix[row, [column[tag] for tag in icon.tags]] = 1
    return matrix, names


def build_arrays(icons: Sequence[Icon], *, size: int = RASTER_SIZE) -> dict[str, np.ndarray]:
    """The asset's arrays: `rasters [n, size, size] uint8`, `words [n, v] bool`, `vocabulary`,
    `tags [n, c] uint8`, `tag_names`, `icon_names` (str arrays)."""
    rasterise = Rasteriser(size=size)
    rasters = np.stack([rasterise(icon.path_data) for icon in icons]).astype(np.uint8)
    words, vocabulary = bag_of_words([icon_words(icon) for icon in icons])
    tags, tag_names = tag_matrix(icons)
    return {
        "rasters": rasters,
        "words": words,
        "vocabulary": np.array(vocabulary, dtype=str),
        "tags": tags,
        "tag_names": np.array(tag_names, dtype=str),
        "icon_names": np.array([icon.name for icon in icons], dtype=str),
    }


def build_mdi_icons(tarball: str, output: str, *, size: int = RASTER_SIZE) -> dict[str, np.ndarray]:
    """Reads the tarball, writes the compressed `.npz` to `output`, returns its arrays."""
    icons = read_tagged_icons(tarball)
    if not icons:
        raise ValueError(f"{tarball}: no icon in meta.json carries a tag")
    arrays = build_arrays(icons, size=size)
    # np.savez_compressed stamps every member 1980-01-01, so equal arrays give equal bytes.
    np.savez_compressed(output, **arrays)
    return arrays


_TARBALL = flags.DEFINE_string("tarball", None, "The `npm pack @mdi/svg@7.4.47` tarball.")
_OUTPUT = flags.DEFINE_string(
    "output", "ltcmh_jax/data/assets/mdi_icons.npz", "Where to write the .npz."
)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not _TARBALL.value:
        raise app.UsageError("--tarball is required (get it with `npm pack @mdi/svg@7.4.47`)")
    arrays = build_mdi_icons(_TARBALL.value, _OUTPUT.value)
    counts = arrays["tags"].sum(axis=0)
    print(
        f"{_OUTPUT.value}: {len(arrays['icon_names'])} tagged icons, "
        f"{len(arrays['tag_names'])} tags ({counts.max()} to {counts.min()} icons), "
        f"{len(arrays['vocabulary'])} words"
    )


if __name__ == "__main__":
    app.run(main)
