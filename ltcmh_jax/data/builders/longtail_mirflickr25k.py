"""TFDS builder `longtail_mirflickr25k`: MIRFlickr-25K, LtCMH long-tail or DCMH balanced split."""

from __future__ import annotations

from etils import epath

from ltcmh_jax.data import protocols
from ltcmh_jax.data.builders.base import LongtailBuilder, LongtailConfig
from ltcmh_jax.data.matfiles import DCMH_RELEASE, MIRFLICKR25K_FILES, load_mirflickr25k

_SHAPES = dict(image_shape=(3, 224, 224), feature_dim=4096, text_dim=1386, num_labels=24)
# Table 1: 2000 queries, training counts z_1 = 3000 down to z_c = 60 (IF 50).
_LONGTAIL = dict(protocol="longtail", **protocols.LONGTAIL["mirflickr25k"])
# DCMH's protocol: 2000 queries, 10000 random training samples.
_BALANCED = dict(protocol="balanced", **protocols.BALANCED["mirflickr25k"])


def _configs():
    configs = []
    for protocol in (_LONGTAIL, _BALANCED):
        for image_source, suffix in (("raw", ""), ("features", "_features")):
            configs.append(
                LongtailConfig(
                    name=f"{protocol['protocol']}{suffix}",
                    description=f"{protocol['protocol']} split, image = {image_source}",
                    image_source=image_source,
                    **protocol,
                    **_SHAPES,
                )
            )
    return configs


class LongtailMirflickr25k(LongtailBuilder):
    """MIRFlickr-25K (20015 samples, 24 labels) split into query / database / train."""

    # tfds derives the code path through `importlib_resources`, which it does not install;
    # giving it here keeps the builder usable on a bare `pip install tensorflow-datasets`.
    code_path = epath.Path(__file__)

    BUILDER_CONFIGS = _configs()
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Place {MIRFLICKR25K_FILES.text}, {MIRFLICKR25K_FILES.labels} and "
        f"{MIRFLICKR25K_FILES.raw_images} (raw images) or {MIRFLICKR25K_FILES.features} "
        f"(VGG features) -- or the merged {MIRFLICKR25K_FILES.merged} -- in manual_dir; "
        f"{DCMH_RELEASE}."
    )

    def load(self, data_dir: str):
        return load_mirflickr25k(data_dir, image_source=self.builder_config.image_source)
