"""Resumable checkpoints: an Orbax `CheckpointManager` over `<workdir>/checkpoints`.

One checkpoint per saved epoch holds three items:
  "state": the device train state (parameters, optimizer states, buffers, B, R^x/R^y) by
           `StandardSave`, restored onto the shapes and shardings of `Trainer.abstract_state()`;
  "split": the query/database/train indices and the head-to-tail label order, so a resumed run
           trains on exactly the rows it started with;
  "meta":  JSON: the epoch, the run's config and the per-epoch history. No NumPy RNG state is
           saved: all host randomness is drawn from `(seed, epoch)`.
Orbax writes each step into a temporary directory and renames it when complete, so a run killed
mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import logging
import os
import re

import jax
import numpy as np
import orbax.checkpoint as ocp

STATE_ITEM = "state"
SPLIT_ITEM = "split"
META_ITEM = "meta"


class Checkpointer:
    """Saves and restores `(state, split, meta)` per epoch, keeping the last `max_to_keep`.

    Args:
      directory: where the step folders go (created if missing).
      max_to_keep: how many of the newest checkpoints to keep; None keeps all.
    """

    def __init__(self, directory: str, *, max_to_keep: int | None = 2):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            cleanup_tmp_directories=True,
            # The states are small (MB) and the loop donates its buffers to the next step; a
            # synchronous save never races a donated array.
            enable_async_checkpointing=False,
        )
        self._manager = ocp.CheckpointManager(
            self.directory,
            item_names=(STATE_ITEM, SPLIT_ITEM, META_ITEM),
            options=options,
        )
        self._unreadable_steps: set[int] = set()

    def all_epochs(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_epoch(self) -> int | None:
        return self._manager.latest_step()

    def save(self, epoch: int, state, split: dict[str, np.ndarray], meta: dict) -> None:
        """Writes checkpoint `epoch` (the number of finished epochs); returns once it is on disk."""
        if epoch in self._unreadable_steps:
            # The step folder exists but could not be read; it is replaced, never a good one.
            self._manager.delete(epoch)
            self._unreadable_steps.discard(epoch)
        self._manager.save(
            epoch,
            args=ocp.args.Composite(
                **{
                    STATE_ITEM: ocp.args.StandardSave(state),
                    SPLIT_ITEM: ocp.args.StandardSave(
                        {name: np.asarray(value) for name, value in split.items()}
                    ),
                    META_ITEM: ocp.args.JsonSave(meta),
                }
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def read_meta(self, epoch: int) -> dict | None:
        """The JSON item of checkpoint `epoch` alone (None when unreadable): what a run checks
        before restoring arrays whose shapes may belong to another configuration."""
        try:
            restored = self._manager.restore(
                epoch, args=ocp.args.Composite(**{META_ITEM: ocp.args.JsonRestore()})
            )
        except Exception:  # noqa: BLE001 -- restore_latest reports unreadable steps
            return None
        return dict(restored[META_ITEM])

    def restore(self, epoch: int, abstract_state):
        """Reads checkpoint `epoch`; `abstract_state` gives the structure, dtypes and shardings.

        Returns:
          `(state, split, meta)`.
        """
        restored = self._manager.restore(
            epoch,
            args=ocp.args.Composite(
                **{
                    STATE_ITEM: ocp.args.StandardRestore(abstract_state),
                    SPLIT_ITEM: ocp.args.StandardRestore(),
                    META_ITEM: ocp.args.JsonRestore(),
                }
            ),
        )
        split = {name: np.asarray(value) for name, value in restored[SPLIT_ITEM].items()}
        return restored[STATE_ITEM], split, dict(restored[META_ITEM])

    def restore_latest(self, abstract_state):
        """Restores the newest readable checkpoint, falling back to older ones with a warning.

        Returns:
          `(epoch, state, split, meta)`, or None when the directory holds no checkpoint.

        Raises:
          RuntimeError: naming the directory, when checkpoints exist but none can be read (the
            run must not silently start over).
        """
        epochs = sorted(self._manager.all_steps(), reverse=True)
        if not epochs:
            return None
        for epoch in epochs:
            try:
                state, split, meta = self.restore(epoch, abstract_state)
            except Exception as error:  # noqa: BLE001 -- any unreadable step falls back
                logging.warning(
                    "checkpoint %s is unreadable (%s); trying the previous one",
                    os.path.join(self.directory, str(epoch)),
                    error_summary(error),
                )
                self._unreadable_steps.add(epoch)
                continue
            if self._unreadable_steps:
                logging.warning(
                    "resuming from the previous good checkpoint %s; the unreadable newer one(s) "
                    "%s are left on disk until their epochs are saved again",
                    os.path.join(self.directory, str(epoch)),
                    sorted(self._unreadable_steps),
                )
            return epoch, state, split, meta
        raise RuntimeError(
            f"{self.directory}: none of the checkpoints {sorted(epochs)} can be read; "
            "move the directory away to start over"
        )

    def close(self) -> None:
        self._manager.close()


def error_summary(error: BaseException, *, limit: int = 200) -> str:
    """`Type: message` of a restore error and of its cause, one line each at most `limit` long.

    Orbax's read errors end with "See full TensorStore details: <bound method ...>" (a repr, not
    the details); that tail is dropped and the cause, which holds the details, is added.
    """
    parts = []
    while error is not None and len(parts) < 2:
        message = re.sub(r"\s*See full TensorStore details:.*", "", str(error), flags=re.S)
        message = re.sub(r"<bound method [^>]*>?", "", message).strip()
        first_line = message.splitlines()[0] if message else ""
        parts.append(f"{type(error).__name__}: {first_line[:limit]}".rstrip(": "))
        error = error.__cause__ or error.__context__
    return "; caused by ".join(parts)


def abstract_like(state):
    """`jax.ShapeDtypeStruct`s (with shardings) of a state, the restore target for `restore`."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        state,
    )
