"""Classical cross-modal hashing floors: closed-form, pure NumPy, one linear map per view.

- `fit_scm`: SCM-Seq / SCM-Orth (Zhang and Li, AAAI 2014), supervised.
- `fit_cca_itq`: CCA + ITQ (Gong et al., TPAMI 2013), unsupervised.
- `fit_linear_floor`: ridge regression onto the labels + a shared random projection, supervised.
Each returns a `LinearHashing` with `encode_image` / `encode_text` -> int8 `[n, k]` in {-1, +1}.
`fit_on_rbf_features(fit, ...)` fits any of them on Gaussian-kernel anchor features instead
(`KernelHashing`), for views with fewer columns than the code has bits.
"""

from ltcmh_jax.classical.cca_itq import CanonicalPairs as CanonicalPairs
from ltcmh_jax.classical.cca_itq import canonical_correlation as canonical_correlation
from ltcmh_jax.classical.cca_itq import fit_cca_itq as fit_cca_itq
from ltcmh_jax.classical.hashing import LinearEncoder as LinearEncoder
from ltcmh_jax.classical.hashing import LinearHashing as LinearHashing
from ltcmh_jax.classical.itq import itq_rotation as itq_rotation
from ltcmh_jax.classical.itq import quantization_loss as quantization_loss
from ltcmh_jax.classical.kernel import SUGGESTED_ANCHORS as SUGGESTED_ANCHORS
from ltcmh_jax.classical.kernel import KernelHashing as KernelHashing
from ltcmh_jax.classical.kernel import RBFFeatures as RBFFeatures
from ltcmh_jax.classical.kernel import TooManyAnchorsError as TooManyAnchorsError
from ltcmh_jax.classical.kernel import fit_on_rbf_features as fit_on_rbf_features
from ltcmh_jax.classical.kernel import fit_rbf_features as fit_rbf_features
from ltcmh_jax.classical.linear_floor import fit_linear_floor as fit_linear_floor
from ltcmh_jax.classical.linear_floor import ridge_to_labels as ridge_to_labels
from ltcmh_jax.classical.moments import TooManyBitsError as TooManyBitsError
from ltcmh_jax.classical.scm import SCM_VARIANTS as SCM_VARIANTS
from ltcmh_jax.classical.scm import fit_scm as fit_scm
from ltcmh_jax.classical.scm import (
    semantic_cross_covariance_factors as semantic_cross_covariance_factors,
)
