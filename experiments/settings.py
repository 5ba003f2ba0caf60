"""absl flags generated from `TrainConfig`'s fields: one flag per field, with the field's help,
default and choices, so a setting is defined once (`ltcmh_jax/train/config.py`).

`define_flags(flag_values)` defines them; `config_from_flags(flag_values)` reads them back into a
validated `TrainConfig`. `experiments.main` uses the global `flags.FLAGS`; the tables runner
parses each flagfile with a fresh `flags.FlagValues` built the same way.
"""

from __future__ import annotations

import dataclasses
import os
import typing

from absl import flags

from ltcmh_jax.train import TrainConfig

_HINTS = typing.get_type_hints(TrainConfig)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines `--<field>` for every `TrainConfig` field on `flag_values`."""
    for field in dataclasses.fields(TrainConfig):
        hint = _HINTS[field.name]
        default = field.default if field.default is not dataclasses.MISSING else None
        if field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        common = dict(name=field.name, help=field.metadata["help"], flag_values=flag_values)
        base = typing.get_args(hint)[0] if type(None) in typing.get_args(hint) else hint
        if field.metadata["choices"] is not None:
            flags.DEFINE_enum(
                default=default, enum_values=list(field.metadata["choices"]), **common
            )
        elif base is bool:
            flags.DEFINE_bool(default=default, **common)
        elif base is int:
            flags.DEFINE_integer(default=default, **common)
        elif base is float:
            flags.DEFINE_float(default=default, **common)
        elif base is str:
            flags.DEFINE_string(default=default, **common)
        elif typing.get_origin(base) is tuple:
            flags.DEFINE_list(default=[str(item) for item in default], **common)
        else:
            raise TypeError(f"TrainConfig.{field.name}: no flag type for {hint}")


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> TrainConfig:
    """The validated `TrainConfig` of the parsed `flag_values`.

    Raises:
      ValueError: one line naming the flag.
    """
    return TrainConfig(**_field_values(flag_values)).validate()


def _field_values(flag_values: flags.FlagValues) -> dict:
    values = {}
    for field in dataclasses.fields(TrainConfig):
        value = flag_values[field.name].value
        if typing.get_origin(_HINTS[field.name]) is tuple:
            try:
                value = tuple(int(item) for item in value)
            except ValueError as error:
                raise ValueError(
                    f"--{field.name}: comma-separated integers expected ({error})"
                ) from None
        values[field.name] = value
    return values


def read_flagfile(path: str) -> dict:
    """The settings a flagfile sets, as `TrainConfig` field values, parsed by absl with a fresh
    `FlagValues` (flags of a run that are not settings, such as `--workdir`, are accepted and
    left out).

    Raises:
      ValueError: naming the file, for an unknown flag or a bad value.
    """
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    for name in RUN_FLAGS:
        flags.DEFINE_string(name, None, "not a setting", flag_values=flag_values)
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such flagfile")
    try:
        flag_values([path, f"--flagfile={path}"])
    except (flags.Error, OSError) as error:
        raise ValueError(f"{path}: {error}") from None
    return {
        name: value
        for name, value in _field_values(flag_values).items()
        if flag_values[name].present
    }


# Flags of experiments.main that are not settings of a run (where it writes, multi-host set-up).
RUN_FLAGS = ("workdir", "coordinator_address", "num_processes", "process_id")
