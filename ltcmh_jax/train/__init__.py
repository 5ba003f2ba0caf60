"""Training: `TrainConfig` in, `train_and_evaluate(config, workdir)` out.

One role per module: `config` (the settings, defined once), `inputs` (data set, protocol, split),
`state` (the nested per-modality `TrainState`, optimizers, model split), `steps` (the pure
updates), `compile` (their jitted, sharded forms), `trainer` (`Trainer`: one run's epochs and
evaluation), `evaluation` (codes and MAP), `run_dir` (atomic writes, resume checks), `report`
(progress, log lines, plots) and `loop` (`train_and_evaluate`).
"""

from ltcmh_jax.files import write_json_atomic as write_json_atomic
from ltcmh_jax.train.config import DATASETS as DATASETS
from ltcmh_jax.train.config import EPOCH_MODES as EPOCH_MODES
from ltcmh_jax.train.config import SPLITS as SPLITS
from ltcmh_jax.train.config import TrainConfig as TrainConfig
from ltcmh_jax.train.inputs import check_label_coverage as check_label_coverage
from ltcmh_jax.train.inputs import load_dataset as load_dataset
from ltcmh_jax.train.inputs import make_split as make_split
from ltcmh_jax.train.inputs import resolve_defaults as resolve_defaults
from ltcmh_jax.train.loop import TrainingInterrupted as TrainingInterrupted
from ltcmh_jax.train.loop import train_and_evaluate as train_and_evaluate
from ltcmh_jax.train.run_dir import data_fingerprint as data_fingerprint
from ltcmh_jax.train.state import TrainState as TrainState
from ltcmh_jax.train.trainer import Trainer as Trainer
from ltcmh_jax.train.trainer import model_config as model_config
