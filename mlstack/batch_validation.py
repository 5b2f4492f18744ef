"""Column-wise validation of a batch of instances: the predictor's fast path to one model input.

`FeatureSchema.validate_instance` (row by row) defines what is valid and what every error says.
This module reaches the same verdict for a whole batch with a few C-level passes (`map`, `zip`,
`itemgetter`) and vectorised numpy checks, instead of Python code per value. It never phrases an
error itself: on any problem it finds the first instance that has one and lets the row-wise
validator raise for it, so status, message and `instances[i].field` are exactly the row-wise ones.

Each feature is checked by its column kind. There is one kind today, `NUMERIC` (a required number:
JSON int or float, finite, within float32); a categorical or nullable kind is another `ColumnKind`
with its own JSON types, conversion and value check, returned for its features by `column_kind`.
Columns of the same kind are validated together as one block. `supports(schema)` says whether every
feature has a kind (else the caller validates row by row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any, Protocol

import numpy as np

from mlstack.schema import FeatureSchema, FeatureSpec, SchemaError, invalid_numbers


class ColumnKind(Protocol):
    """How the columns of one kind are checked and converted, all rows at once."""

    @property
    def name(self) -> str:
        """The key of this kind's block in `ValidatedBatch.blocks`."""

    @property
    def json_types(self) -> frozenset[type]:
        """The Python types (as parsed from JSON) a value of this kind may have; anything else is refused."""

    def to_block(self, rows: Sequence[tuple[Any, ...]]) -> np.ndarray:
        """The block (rows x this kind's columns) as an array; may raise on values it cannot take."""

    def bad_rows(self, block: np.ndarray) -> np.ndarray:
        """One bool per row: does any of its values fail this kind's value checks?"""


@dataclass(frozen=True)
class NumericKind:
    """Numbers the model takes as float32: JSON int or float (not bool), finite, |x| <= float32 max."""

    name: str = "numeric"
    json_types: frozenset[type] = frozenset((int, float))

    def to_block(self, rows: Sequence[tuple[Any, ...]]) -> np.ndarray:
        # float64 keeps the values as sent (sklearn); ONNX casts to its own input type.
        return np.array(rows, dtype=np.float64)  # OverflowError: an int beyond float range

    def bad_rows(self, block: np.ndarray) -> np.ndarray:
        rows: np.ndarray = np.any(invalid_numbers(block), axis=1)
        return rows


NUMERIC = NumericKind()


def column_kind(spec: FeatureSpec) -> ColumnKind | None:
    """The kind that validates a feature column-wise, or None when there is none (yet) for it."""
    if not spec.is_categorical and not spec.nullable:
        return NUMERIC
    return None  # categorical and nullable features: row by row until they get their kinds


def supports(schema: FeatureSchema) -> bool:
    """Whether every feature of `schema` has a column kind (and no id column may come along)."""
    return schema.id_column is None and all(column_kind(spec) is not None for spec in schema.features)


@dataclass(frozen=True)
class ValidatedBatch:
    """A valid batch: the instances as sent and one array per kind, columns in schema order."""

    instances: list[Mapping[str, Any]]
    blocks: Mapping[str, np.ndarray]  # kind name -> rows x that kind's columns
    columns: Mapping[str, tuple[int, ...]]  # kind name -> the schema positions of its columns

    def matrix(self) -> np.ndarray:
        """The all-numeric model input (rows x features, float64)."""
        if set(self.blocks) != {NUMERIC.name}:
            raise TypeError(f"the batch has non-numeric columns: {sorted(set(self.blocks) - {NUMERIC.name})}")
        return self.blocks[NUMERIC.name]


class _Doubt(Exception):
    """Something the bulk checks do not decide: the row-wise validator finds and phrases it."""


def validate_batch(instances: list[Any], schema: FeatureSchema) -> ValidatedBatch:
    """Validate a non-empty batch; the row-wise validator's verdict, reached column-wise.

    Raises:
        SchemaError: for the first offending instance, exactly as `schema.validate_instance` raises it.
    """
    if not instances:
        raise SchemaError("instances", "must contain at least one instance")
    if not supports(schema):
        raise TypeError("the schema has features without a column kind: validate it row by row")
    names = schema.feature_names
    kinds: dict[str, tuple[ColumnKind, list[int]]] = {}
    for position, spec in enumerate(schema.features):
        kind = column_kind(spec)
        assert kind is not None  # supports() checked
        kinds.setdefault(kind.name, (kind, []))[1].append(position)
    try:
        rows = _rows(instances, names)
        blocks: dict[str, np.ndarray] = {}
        bad = np.zeros(len(instances), dtype=bool)
        for kind_name, (kind, positions) in kinds.items():
            block_rows = rows if len(positions) == len(names) else list(map(itemgetter(*positions), rows))
            if len(positions) == 1 and len(names) > 1:
                block_rows = [(value,) for value in block_rows]
            if not set(map(type, chain.from_iterable(block_rows))) <= kind.json_types:
                raise _Doubt
            block = kind.to_block(block_rows)
            bad |= kind.bad_rows(block)
            blocks[kind_name] = block
    except (_Doubt, KeyError, TypeError, ValueError, OverflowError):
        return _row_wise(instances, schema, kinds)
    if bad.any():
        first = int(np.argmax(bad))
        schema.validate_instance(instances[first], first)  # raises the row-wise error for it
        raise AssertionError(f"instances[{first}]: the bulk checks refused what the schema accepts")
    columns = {name: tuple(positions) for name, (_kind, positions) in kinds.items()}
    return ValidatedBatch(instances, blocks, columns)


def _rows(instances: list[Any], names: list[str]) -> list[tuple[Any, ...]]:
    """Every instance's values in schema order; _Doubt unless each is a dict of exactly these keys."""
    if set(map(type, instances)) != {dict} or set(map(len, instances)) != {len(names)}:
        raise _Doubt  # not objects, or a key too many or too few
    getter = itemgetter(*names)
    if len(names) == 1:
        return [(value,) for value in map(getter, instances)]
    # As many keys as features and every feature found: exactly the schema's keys. KeyError: missing.
    return list(map(getter, instances))


def _row_wise(
    instances: list[Any], schema: FeatureSchema, kinds: Mapping[str, tuple[ColumnKind, list[int]]]
) -> ValidatedBatch:
    """The reference path: every instance through `validate_instance`, in order (raises the first error)."""
    rows = [tuple(schema.validate_instance(instance, index)) for index, instance in enumerate(instances)]
    blocks = {}
    for kind_name, (kind, positions) in kinds.items():
        blocks[kind_name] = kind.to_block([tuple(row[p] for p in positions) for row in rows])
    columns = {name: tuple(positions) for name, (_kind, positions) in kinds.items()}
    return ValidatedBatch(instances, blocks, columns)
