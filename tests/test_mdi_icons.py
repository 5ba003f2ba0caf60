"""The embedded Material Design Icons set and its builder (experiments/build_mdi_icons.py)."""

import io
import json
import tarfile

import numpy as np
import pytest

from experiments import build_mdi_icons
from ltcmh_jax.data import MDI_ICONS_SPLIT, load_mdi_icons, longtail_split, read_mdi_icons

# Tiny icons in the 24 x 24 viewBox; at 32 px a unit is 4/3 px, so 3 -> 4 px, 12 -> 16, 21 -> 28.
SQUARE = "M3 3H21V21H3Z"
LEFT_HALF = "M0 0H12V24H0Z"
FRAME = "M0 0H24V24H0ZM6 6V18H18V6Z"  # the inner square winds the other way: a hole
# A drawing command right after a closepath (as MDI's google-ads has): a degenerate line.
LEFT_HALF_THEN_LINE = "M0 0H12V24H0ZL6 6Z"

TINY_META = [
    {"name": "square", "aliases": ["box-big"], "tags": ["Shape"]},
    {"name": "half-left", "aliases": [], "tags": ["Shape", "Arrange"]},
    {"name": "untagged-box", "aliases": [], "tags": []},
    {"name": "frame-box", "aliases": ["square-hole"], "tags": ["Arrange"]},
    {"name": "half-line", "aliases": [], "tags": ["Shape"]},
]
TINY_PATHS = {
    "square": SQUARE,
    "half-left": LEFT_HALF,
    "untagged-box": SQUARE,
    "frame-box": FRAME,
    "half-line": LEFT_HALF_THEN_LINE,
}


def write_tiny_tarball(path):
    """An `npm pack`-shaped tarball: package/meta.json and package/svg/<name>.svg."""
    members = {"package/meta.json": json.dumps(TINY_META).encode()}
    for name, path_data in TINY_PATHS.items():
        svg = (
            f'<svg xmlns="http://www.w3.org/2000/svg" id="mdi-{name}" viewBox="0 0 24 24">'
            f'<path d="{path_data}" /></svg>'
        )
        members[f"package/svg/{name}.svg"] = svg.encode()
    with tarfile.open(path, "w:gz") as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def square_raster(top, left, bottom, right):
    raster = np.zeros((32, 32), np.uint8)
    raster[top:bottom, left:right] = 255
    return raster


def test_committed_asset_shapes_and_long_tail():
    dataset = load_mdi_icons()
    assert dataset.image.shape == (5382, 1024) and dataset.image.dtype == np.float32
    assert dataset.text.shape == (5382, 1713) and dataset.text.dtype == np.float32
    assert dataset.labels.shape == (5382, 61)
    assert 0.0 <= dataset.image.min() and dataset.image.max() == 1.0
    assert set(np.unique(dataset.text)) == {0.0, 1.0}
    counts = dataset.labels.sum(axis=0)
    per_icon = dataset.labels.sum(axis=1)
    # The figures the issue states for @mdi/svg 7.4.47.
    assert (counts.max(), counts.min()) == (659, 10)
    assert dataset.label_names[int(counts.argmax())] == "Home Automation"
    assert per_icon.min() == 1 and int((per_icon >= 2).sum()) == 1400
    assert list(dataset.label_names) == sorted(dataset.label_names)


def test_committed_asset_raster_of_a_known_icon():
    arrays = read_mdi_icons()
    names = list(arrays["icon_names"])
    assert names == sorted(names) and "google-ads" in names
    # MDI's "square" icon is the open path M3,3V21H21V3 (a fill closes it): 4..28 px filled.
    np.testing.assert_array_equal(
        arrays["rasters"][names.index("square")], square_raster(4, 4, 28, 28)
    )
    row = names.index("home")
    assert "home" in set(arrays["vocabulary"][arrays["words"][row]])
    # meta.json: "home" is tagged "Home Automation" and "Places".
    assert arrays["tag_names"][arrays["tags"][row] == 1].tolist() == ["Home Automation", "Places"]


def test_longtail_split_of_the_flagfile_is_exact():
    dataset = load_mdi_icons()
    split = longtail_split(dataset.labels, seed=0, **MDI_ICONS_SPLIT)
    np.testing.assert_array_equal(split.achieved_counts, split.target_counts)
    assert split.target_counts.max() == 300 and split.target_counts.min() == 6
    assert split.query.size == 500


def test_builder_on_a_tiny_tarball(tmp_path):
    pytest.importorskip("svgpath2mpl")
    tarball = write_tiny_tarball(tmp_path / "tiny.tgz")
    arrays = build_mdi_icons.build_mdi_icons(str(tarball), str(tmp_path / "tiny.npz"))
    # Sorted by name, the untagged icon left out.
    assert arrays["icon_names"].tolist() == ["frame-box", "half-left", "half-line", "square"]
    assert arrays["tag_names"].tolist() == ["Arrange", "Shape"]
    np.testing.assert_array_equal(arrays["tags"], [[1, 0], [1, 1], [0, 1], [0, 1]])
    assert arrays["tags"].dtype == np.uint8
    frame = np.full((32, 32), 255, np.uint8)
    frame[8:24, 8:24] = 0
    np.testing.assert_array_equal(arrays["rasters"][0], frame)
    np.testing.assert_array_equal(arrays["rasters"][1], square_raster(0, 0, 32, 16))
    np.testing.assert_array_equal(arrays["rasters"][2], square_raster(0, 0, 32, 16))
    np.testing.assert_array_equal(arrays["rasters"][3], square_raster(4, 4, 28, 28))
    # Words: frame,box,square,hole | half,left | half,line | square,box,big; in >= 2 icons:
    # box (frame-box, square), half (2), square (square, square-hole).
    assert arrays["vocabulary"].tolist() == ["box", "half", "square"]
    np.testing.assert_array_equal(arrays["words"], [[1, 0, 1], [0, 1, 0], [0, 1, 0], [1, 0, 1]])
    dataset = load_mdi_icons(tmp_path / "tiny.npz")
    assert dataset.image.shape == (4, 1024)
    np.testing.assert_array_equal(dataset.image[3], square_raster(4, 4, 28, 28).ravel() / 255)


def test_builder_is_deterministic(tmp_path):
    pytest.importorskip("svgpath2mpl")
    tarball = str(write_tiny_tarball(tmp_path / "tiny.tgz"))
    build_mdi_icons.build_mdi_icons(tarball, str(tmp_path / "first.npz"))
    build_mdi_icons.build_mdi_icons(tarball, str(tmp_path / "second.npz"))
    assert (tmp_path / "first.npz").read_bytes() == (tmp_path / "second.npz").read_bytes()


def test_explicit_moveto_after_close():
    pytest.importorskip("svgpath2mpl")
    assert build_mdi_icons.explicit_moveto_after_close("M1 1H3V3ZL5 5Z") == "M1 1H3V3ZM1.0 1.0L5 5Z"
    assert build_mdi_icons.explicit_moveto_after_close("M1 1H3V3Zm1 1z") == "M1 1H3V3Zm1 1z"


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz: no such file"):
        load_mdi_icons(tmp_path / "missing.npz")
    np.savez(tmp_path / "partial.npz", rasters=np.zeros((1, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"partial.npz: missing arrays \['words'"):
        load_mdi_icons(tmp_path / "partial.npz")
    with pytest.raises(FileNotFoundError, match="npm pack @mdi/svg@7.4.47"):
        build_mdi_icons.read_tagged_icons(str(tmp_path / "missing.tgz"))
