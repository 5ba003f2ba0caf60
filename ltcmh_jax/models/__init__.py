"""Flax NNX models: feature networks, the individuality-commonality auto-encoder, meta features
and the hashing model that combines them per method (ltcmh, dcmh, metacmh)."""

from ltcmh_jax.models.autoencoder import (
    COMMONALITY_PATHS,
    AEOutput,
    CommonalityReader,
    IndividualityCommonalityAE,
)
from ltcmh_jax.models.hashing import (
    AUTOENCODER_PARAMS,
    IMAGE_NETS,
    IMAGE_PARAMS,
    METHODS,
    MODALITIES,
    MODALITY_PARAMS,
    MODALITY_SETS,
    TEXT_PARAMS,
    VARIANTS,
    HashingModel,
    ModelConfig,
    build_model,
)
from ltcmh_jax.models.image import CNNF, ImageMLP
from ltcmh_jax.models.meta import Memory, MemoryMetaFeature, MetaFeature, label_centroids
from ltcmh_jax.models.mlp import MLP, dropout
from ltcmh_jax.models.text import TextMLP, sparse_bag
from ltcmh_jax.models.vggf import load_vggf_weights

__all__ = [
    "AEOutput",
    "AUTOENCODER_PARAMS",
    "CNNF",
    "COMMONALITY_PATHS",
    "CommonalityReader",
    "HashingModel",
    "IMAGE_NETS",
    "IMAGE_PARAMS",
    "ImageMLP",
    "IndividualityCommonalityAE",
    "METHODS",
    "MLP",
    "MODALITIES",
    "MODALITY_PARAMS",
    "MODALITY_SETS",
    "Memory",
    "MemoryMetaFeature",
    "MetaFeature",
    "ModelConfig",
    "TEXT_PARAMS",
    "TextMLP",
    "VARIANTS",
    "build_model",
    "dropout",
    "label_centroids",
    "load_vggf_weights",
    "sparse_bag",
]
