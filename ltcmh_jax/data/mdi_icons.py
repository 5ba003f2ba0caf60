"""The embedded Material Design Icons set: icon rasters, name words, multi-label tags.

`assets/mdi_icons.npz` is built from the npm package `@mdi/svg` 7.4.47 (Apache-2.0, see
`assets/MDI_LICENSE.txt`) by `experiments/build_mdi_icons.py`. It holds the 5382 icons that carry
at least one of the 61 tags; the 2065 untagged icons are left out, since an icon without a label
is neither a relevant nor an irrelevant answer to any query. Tags are long-tailed (659 icons for
"Home Automation" down to 10) and multi-label (1400 icons carry two or more).
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ltcmh_jax.data.dataset import MultiModalDataset

MDI_ICONS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "mdi_icons.npz")
MDI_ICONS_FIELDS = ("rasters", "words", "vocabulary", "tags", "tag_names", "icon_names")
# The long-tail split of experiments/configs/mdi_icons.flags (docs/DESIGN.md, Data).
MDI_ICONS_SPLIT = dict(z1=300, imbalance_factor=50.0, num_query=500)


def read_mdi_icons(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The asset's arrays as stored (`MDI_ICONS_FIELDS`), for the names and vocabulary.

    Returns:
      `rasters [n, 32, 32] uint8` alpha, `words [n, v] bool`, `vocabulary [v]`, `tags [n, c]
      uint8`, `tag_names [c]`, `icon_names [n]` (str arrays).

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: naming the file, for a missing array or a truncated/corrupt archive.
    """
    path = os.fspath(MDI_ICONS_PATH if path is None else path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no such file; rebuild it with `python -m experiments.build_mdi_icons "
            "--tarball=mdi-svg-7.4.47.tgz` (BUILD.md)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in MDI_ICONS_FIELDS if name not in archive.files]
            if missing:
                raise ValueError(f"{path}: missing arrays {missing}, expected {MDI_ICONS_FIELDS}")
            return {name: archive[name] for name in MDI_ICONS_FIELDS}
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: truncated or corrupt .npz ({error})") from None


def load_mdi_icons(path: str | os.PathLike | None = None) -> MultiModalDataset:
    """The icon set as a `MultiModalDataset` (`--dataset=mdi_icons`).

    Args:
      path: the `.npz`; None for the committed asset.

    Returns:
      image `[n, 1024]` float32, the 32 x 32 alpha raster flattened row-major and scaled to
      [0, 1]; text `[n, v]` float32 in {0, 1}, words of the icon's name and aliases; labels
      `[n, 61]` tags; label_names the tag names. n = 5382, v = 1713 for the committed asset.
    """
    path = os.fspath(MDI_ICONS_PATH if path is None else path)
    arrays = read_mdi_icons(path)
    rasters = arrays["rasters"]
    if rasters.ndim != 3 or rasters.dtype != np.uint8:
        raise ValueError(
            f"{path}: rasters has shape {rasters.shape} dtype {rasters.dtype}, expected "
            "[n, H, W] uint8"
        )
    tags = arrays["tags"]
    untagged = np.flatnonzero(tags.sum(axis=1) == 0)
    if untagged.size:
        raise ValueError(
            f"{path}: icon row {int(untagged[0])} has no tag; untagged icons are left out"
        )
    image = rasters.reshape(rasters.shape[0], -1).astype(np.float32) / np.float32(255)
    try:
        return MultiModalDataset(
            image=image,
            text=arrays["words"].astype(np.float32),
            labels=tags,
            label_names=tuple(str(name) for name in arrays["tag_names"]),
        )
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
