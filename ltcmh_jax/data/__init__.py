"""Data layer: datasets, long-tail and balanced splits, the synthetic default, loaders.

Nothing here imports jax, so `import ltcmh_jax.data` stays light. Re-exports use the
`name as name` form (ruff's explicit re-export), one import per line.
"""

from ltcmh_jax.data.aloi import ALOI_SPLIT as ALOI_SPLIT
from ltcmh_jax.data.aloi import load_aloi as load_aloi
from ltcmh_jax.data.dataset import MultiModalDataset as MultiModalDataset
from ltcmh_jax.data.longtail import HEAD_SHARE as HEAD_SHARE
from ltcmh_jax.data.longtail import SAMPLERS as SAMPLERS
from ltcmh_jax.data.longtail import Split as Split
from ltcmh_jax.data.longtail import balanced_split as balanced_split
from ltcmh_jax.data.longtail import default_num_head as default_num_head
from ltcmh_jax.data.longtail import describe as describe
from ltcmh_jax.data.longtail import longtail_split as longtail_split
from ltcmh_jax.data.longtail import zipf_counts as zipf_counts
from ltcmh_jax.data.matfiles import LazyImages as LazyImages
from ltcmh_jax.data.matfiles import load_mirflickr25k as load_mirflickr25k
from ltcmh_jax.data.matfiles import load_npz as load_npz
from ltcmh_jax.data.matfiles import load_nuswide as load_nuswide
from ltcmh_jax.data.mdi_icons import MDI_ICONS_SPLIT as MDI_ICONS_SPLIT
from ltcmh_jax.data.mdi_icons import load_mdi_icons as load_mdi_icons
from ltcmh_jax.data.mdi_icons import read_mdi_icons as read_mdi_icons
from ltcmh_jax.data.mfeat import MFEAT_SPLIT as MFEAT_SPLIT
from ltcmh_jax.data.mfeat import load_mfeat as load_mfeat
from ltcmh_jax.data.pipeline import epoch_batches as epoch_batches
from ltcmh_jax.data.pipeline import epoch_permutation as epoch_permutation
from ltcmh_jax.data.pipeline import grain_batches as grain_batches
from ltcmh_jax.data.pipeline import read_rows as read_rows
from ltcmh_jax.data.synthetic import SYNTHETIC_SPLIT as SYNTHETIC_SPLIT
from ltcmh_jax.data.synthetic import VERSIONS as VERSIONS
from ltcmh_jax.data.synthetic import VISIBILITY_KINDS as VISIBILITY_KINDS
from ltcmh_jax.data.synthetic import label_visibility as label_visibility
from ltcmh_jax.data.synthetic import make_synthetic_longtail as make_synthetic_longtail
from ltcmh_jax.data.synthetic_concepts import DOMINANCE_KINDS as DOMINANCE_KINDS
from ltcmh_jax.data.synthetic_concepts import TIERS as TIERS
from ltcmh_jax.data.synthetic_concepts import LabelStructure as LabelStructure
from ltcmh_jax.data.synthetic_concepts import label_structure as label_structure
