"""Every LtCMH loss as a pure function of arrays (Eqs. 3-7 and 9-10 of the paper).

- `hsic`: J2, the independence of the individualities (Eq. 5).
- `average_hausdorff`, `label_similarity`: H and R between labels within a modality (Eq. 4).
- `commonality_regularizer`, `reconstruction_loss`, `commonality_matching_loss`,
  `autoencoder_loss`: J1, J3 and Loss1 of the auto-encoder (Eqs. 3, 6, 7).
- `similarity_matrix`, `dcmh_likelihood`, `quantization_loss`, `balance_loss`, `hash_loss`:
  Loss2 of the hash-code learning (Eqs. 9, 10); `blocked_dcmh_likelihood` the likelihood fused
  with S from `pack_labels` bit masks, block by block; `label_rarity_weights`,
  `label_rarity_pair_weights` the pair weights of `--pair_weighting=label_rarity`.

Rows are samples everywhere. Nothing is jitted here: jit the step that calls these.
"""

from ltcmh_jax.losses.autoencoder import autoencoder_loss as autoencoder_loss
from ltcmh_jax.losses.autoencoder import commonality_matching_loss as commonality_matching_loss
from ltcmh_jax.losses.autoencoder import commonality_regularizer as commonality_regularizer
from ltcmh_jax.losses.autoencoder import reconstruction_loss as reconstruction_loss
from ltcmh_jax.losses.hashing import balance_loss as balance_loss
from ltcmh_jax.losses.hashing import balanced_pair_weights as balanced_pair_weights
from ltcmh_jax.losses.hashing import blocked_dcmh_likelihood as blocked_dcmh_likelihood
from ltcmh_jax.losses.hashing import dcmh_likelihood as dcmh_likelihood
from ltcmh_jax.losses.hashing import hash_loss as hash_loss
from ltcmh_jax.losses.hashing import label_rarity_pair_weights as label_rarity_pair_weights
from ltcmh_jax.losses.hashing import label_rarity_weights as label_rarity_weights
from ltcmh_jax.losses.hashing import pack_labels as pack_labels
from ltcmh_jax.losses.hashing import quantization_loss as quantization_loss
from ltcmh_jax.losses.hashing import similar_pair_share as similar_pair_share
from ltcmh_jax.losses.hashing import similarity_matrix as similarity_matrix
from ltcmh_jax.losses.hausdorff import average_hausdorff as average_hausdorff
from ltcmh_jax.losses.hausdorff import label_similarity as label_similarity
from ltcmh_jax.losses.independence import hsic as hsic
from ltcmh_jax.losses.independence import normalized_hsic as normalized_hsic

__all__ = [
    "autoencoder_loss",
    "average_hausdorff",
    "balance_loss",
    "blocked_dcmh_likelihood",
    "commonality_matching_loss",
    "commonality_regularizer",
    "dcmh_likelihood",
    "hash_loss",
    "hsic",
    "label_rarity_pair_weights",
    "label_rarity_weights",
    "label_similarity",
    "normalized_hsic",
    "pack_labels",
    "quantization_loss",
    "reconstruction_loss",
    "similarity_matrix",
]
