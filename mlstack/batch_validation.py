"""Column-wise validation of a batch of instances: the predictor's fast path to one model input.

`FeatureSchema.validate_instance` (row by row) defines what is valid and what every error says.
This module reaches the same verdict for a whole batch with a few C-level passes (`map`, `zip`,
`itemgetter`) and vectorised numpy checks, instead of Python code per value. It never phrases an
error itself: on any problem it finds the first instance that has one and lets the row-wise
validator raise for it, so status, message and `instances[i].field` are exactly the row-wise ones.

Each feature is checked by its column kind (`column_kind`): `NUMERIC` (a required number: JSON int
or float, finite, within float32), `NULLABLE_NUMERIC` (the same, or null), and one `CategoricalKind`
per categorical feature (a JSON string, or null where missing is allowed; in the vocabulary where it
is closed). Columns of the same kind are validated together as one block. The schema's id column may
come along (a string, a number or null) and is not validated further. An instance that leaves out a
nullable feature takes the row-wise path, which logs it with null for that feature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any, Protocol

import numpy as np

from mlstack.schema import UNKNOWN_ERROR, FeatureSchema, FeatureSpec, SchemaError, invalid_numbers

_NONE = type(None)


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


@dataclass(frozen=True)
class NullableNumericKind:
    """Numbers that may be missing: JSON int, float or null (null -> NaN, which the model imputes)."""

    name: str = "numeric_nullable"
    json_types: frozenset[type] = frozenset((int, float, _NONE))

    def to_block(self, rows: Sequence[tuple[Any, ...]]) -> np.ndarray:
        block = np.array(rows, dtype=np.float64)  # None -> NaN
        nan = np.isnan(block)
        if nan.any():
            # A NaN literal (the stdlib's fallback parse) is not a null: make it fail the value check.
            nulls = np.array(rows, dtype=object) == None  # noqa: E711 - element-wise, on an object array
            literal = nan & np.logical_not(nulls)
            block[literal] = np.inf
        return block

    def bad_rows(self, block: np.ndarray) -> np.ndarray:
        rows: np.ndarray = np.any(invalid_numbers(block) & np.logical_not(np.isnan(block)), axis=1)
        return rows


NULLABLE_NUMERIC = NullableNumericKind()


@dataclass(frozen=True)
class CategoricalKind:
    """One categorical feature: a JSON string (a category), or null / "" where missing is allowed.

    With a closed vocabulary (`unknown: error`) a category outside it fails the row; with an open one
    any string passes (the predictor counts the unseen ones). The block holds the strings as sent.
    """

    feature: str
    nullable: bool
    categories: frozenset[str] | None  # None: open vocabulary

    @property
    def name(self) -> str:
        return f"categorical:{self.feature}"

    @property
    def json_types(self) -> frozenset[type]:
        return frozenset((str, _NONE)) if self.nullable else frozenset((str,))

    def to_block(self, rows: Sequence[tuple[Any, ...]]) -> np.ndarray:
        block = np.empty((len(rows), 1), dtype=object)
        block[:, 0] = [row[0] for row in rows]
        return block

    def bad_rows(self, block: np.ndarray) -> np.ndarray:
        values = block[:, 0].tolist()
        bad = np.zeros(len(values), dtype=bool)
        if not self.nullable:
            bad |= np.fromiter(map(_empty, values), dtype=bool, count=len(values))
        if self.categories is not None:
            known = self.categories
            present = np.fromiter(map(_present, values), dtype=bool, count=len(values))
            inside = np.fromiter(map(known.__contains__, values), dtype=bool, count=len(values))
            bad |= present & np.logical_not(inside)
        return bad


def _empty(value: Any) -> bool:
    return value is None or value == ""


def _present(value: Any) -> bool:
    return value is not None and value != ""


def column_kind(spec: FeatureSpec) -> ColumnKind:
    """The kind that validates a feature column-wise."""
    if spec.is_categorical:
        closed = frozenset(spec.categories) if spec.unknown == UNKNOWN_ERROR else None
        return CategoricalKind(spec.name, spec.nullable, closed)
    return NULLABLE_NUMERIC if spec.nullable else NUMERIC


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

    def column(self, position: int) -> np.ndarray:
        """The values of the feature at schema position `position` (float64 or object strings)."""
        for name, positions in self.columns.items():
            if position in positions:
                return self.blocks[name][:, positions.index(position)]
        raise KeyError(position)


class _Doubt(Exception):
    """Something the bulk checks do not decide: the row-wise validator finds and phrases it."""


def validate_batch(instances: list[Any], schema: FeatureSchema) -> ValidatedBatch:
    """Validate a non-empty batch; the row-wise validator's verdict, reached column-wise.

    Raises:
        SchemaError: for the first offending instance, exactly as `schema.validate_instance` raises it.
    """
    if not instances:
        raise SchemaError("instances", "must contain at least one instance")
    names = schema.feature_names
    kinds: dict[str, tuple[ColumnKind, list[int]]] = {}
    for position, spec in enumerate(schema.features):
        kind = column_kind(spec)
        kinds.setdefault(kind.name, (kind, []))[1].append(position)
    try:
        rows = _rows(instances, names, schema.id_column)
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


_ID_TYPES = frozenset((str, int, float, _NONE))


def _rows(instances: list[Any], names: list[str], id_column: str | None = None) -> list[tuple[Any, ...]]:
    """Every instance's values in schema order; _Doubt unless each is a dict of exactly these keys
    (plus, where the schema has one, the id column, which must hold a string, a number or null)."""
    if set(map(type, instances)) != {dict}:
        raise _Doubt  # not objects
    sizes = set(map(len, instances))
    if sizes != {len(names)}:
        if id_column is None or not sizes <= {len(names), len(names) + 1}:
            raise _Doubt  # a key too many or too few
        with_id = [instance for instance in instances if len(instance) > len(names)]
        if not all(map(dict.__contains__, with_id, [id_column] * len(with_id))):
            raise _Doubt  # the extra key is not the id column
        if not set(map(type, map(itemgetter(id_column), with_id))) <= _ID_TYPES:
            raise _Doubt
    getter = itemgetter(*names)
    if len(names) == 1:
        return [(value,) for value in map(getter, instances)]
    # As many keys as features and every feature found: exactly the schema's keys. KeyError: missing.
    return list(map(getter, instances))


def _row_wise(
    instances: list[Any], schema: FeatureSchema, kinds: Mapping[str, tuple[ColumnKind, list[int]]]
) -> ValidatedBatch:
    """The reference path: every instance through `validate_instance`, in order (raises the first error).

    An instance that leaves out a nullable feature is logged with null for it, so that every logged
    row has every feature.
    """
    rows = [tuple(schema.validate_instance(instance, index)) for index, instance in enumerate(instances)]
    blocks = {}
    for kind_name, (kind, positions) in kinds.items():
        blocks[kind_name] = kind.to_block([tuple(row[p] for p in positions) for row in rows])
    columns = {name: tuple(positions) for name, (_kind, positions) in kinds.items()}
    names = schema.feature_names
    if all(name in instance for instance in instances for name in names):
        return ValidatedBatch(instances, blocks, columns)  # nothing left out: the instances as sent
    complete = [
        instance if all(name in instance for name in names) else {**dict.fromkeys(names), **instance}
        for instance in instances
    ]
    return ValidatedBatch(complete, blocks, columns)
