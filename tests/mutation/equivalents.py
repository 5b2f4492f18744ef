"""Surviving mutants that are equivalent to the original code, each with the reason.

Keyed by (staged file, function, original line, mutated line), stripped, as `make mutation` prints
them: stable across runs and line moves, unlike mutmut's numbering. ANY as the mutated line covers
every mutation of that line, and as the original line every mutation of the function (code that
cannot run: say why).
"""

from __future__ import annotations

ANY = "*"

_REQUEST = "mlstack_api/request_validation.py"
_OVERFLOW_UNREACHABLE = (
    "unreachable: no OverflowError leaves fast_matrix. The batch validator catches it from "
    "np.array and re-validates row by row, where FeatureSpec.check_value turns float(value)'s "
    "OverflowError into the SchemaError 'is too large for a number'; the row-wise path does the same"
)

EQUIVALENT: dict[tuple[str, str, str, str], str] = {
    # -- gate -------------------------------------------------------------------------------------
    (
        "mlstack/gate.py",
        "_signed",
        'return f"{value:+.4f}" if value == 0 or abs(value) >= 1e-4 else f"{value:+.2g}"',
        'return f"{value:+.4f}" if value == 0 or abs(value) > 1e-4 else f"{value:+.2g}"',
    ): "the branches differ only at |value| == 1e-4, where both formats print ±0.0001",
    # -- request validation -----------------------------------------------------------------------
    (
        _REQUEST,
        "decode_json",
        "return orjson.loads(body)",
        "return orjson.loads(None)",
    ): "orjson.loads(None) raises orjson.JSONDecodeError, so the stdlib fallback parses the same body "
    "into the same values (both parse JSON numbers, strings and duplicate keys alike); only speed differs",
    (_REQUEST, "model_input", "field = _overflowing_field(instances)", ANY): _OVERFLOW_UNREACHABLE,
    (
        _REQUEST,
        "model_input",
        'raise RequestError(422, f"{field}: number is too large", field) from exc',
        ANY,
    ): _OVERFLOW_UNREACHABLE,
    (_REQUEST, "_overflowing_field", ANY, ANY): "only called from the unreachable OverflowError branch of "
    "model_input; " + _OVERFLOW_UNREACHABLE,
    # -- schema -----------------------------------------------------------------------------------
    **{
        (
            "mlstack/schema.py",
            "FeatureSpec.from_dict",
            'nullable=bool(data.get("nullable", False)),',
            after,
        ): ("bool(None) is False: a stored feature without `nullable` is required either way")
        for after in ('nullable=bool(data.get("nullable", None)),', 'nullable=bool(data.get("nullable", )),')
    },
    (
        "mlstack/schema.py",
        "numeric_values",
        "if pd.api.types.is_bool_dtype(column):",
        "if pd.api.types.is_bool_dtype(None):",
    ): "the general branch gives booleans the same values: pd.to_numeric keeps them (and NA) as they "
    "are and astype('float64') makes them 1.0/0.0/NaN, as the bool branch does",
    **{
        ("mlstack/schema.py", "numeric_values", before, after): "astype(None) is astype('float64') "
        "(numpy's default dtype)"
        for before, after in (
            ('return column.astype("float64")', "return column.astype(None)"),
            (
                'return pd.to_numeric(column, errors="coerce").astype("float64")',
                'return pd.to_numeric(column, errors="coerce").astype(None)',
            ),
        )
    },
    # -- data validation --------------------------------------------------------------------------
    **{
        (
            "mlstack/data_validation.py",
            "_positions",
            "return np.flatnonzero(np.asarray(mask, dtype=bool))",
            after,
        ): "every mask passed in is boolean already (pandas or numpy comparisons and isna)"
        for after in (
            "return np.flatnonzero(np.asarray(mask, dtype=None))",
            "return np.flatnonzero(np.asarray(mask, ))",
        )
    },
    (
        "mlstack/data_validation.py",
        "check_column",
        "if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):",
        ANY,
    ): "the dtype test only skips work: unparseable_mask is all False for numeric and bool columns, "
    "so entering the branch for them adds no issue",
    (
        "mlstack/data_validation.py",
        "check_column",
        'with np.errstate(invalid="ignore"):',
        "with np.errstate(invalid=None):",
    ): "comparisons with NaN raise no floating-point 'invalid' warning in numpy, so the error state "
    "inside the block does not matter (checked with -W error)",
    (
        "mlstack/data_validation.py",
        "row_reasons",
        'return pd.Series(["; ".join(r) for r in reasons], index=frame.index, dtype=object)',
        'return pd.Series(["; ".join(r) for r in reasons], index=frame.index, dtype=None)',
    ): "a Series of strings, or an empty one, is object dtype in pandas 2 without asking",
    (
        "mlstack/data_validation.py",
        "validate_dataset",
        "declared = infer_schema(features, target, dataset.class_names, dataset.target_name, data)",
        "declared = infer_schema(features, target, dataset.class_names, None, data)",
    ): "the declared schema's target name is never read: only its features are checked",
    (
        "mlstack/data_validation.py",
        "validate_dataset",
        "issues = column_issues(features, declared, range_slack=None)",
        "issues = column_issues(features, declared, )",
    ): "the declared schema's ranges are the data's own minimum and maximum (overrides cannot set "
    "ranges), so no value lies outside them, with or without the slack band",
    (
        "mlstack/data_validation.py",
        "validate_dataset",
        "range_slack=RANGE_SLACK,",
        "",
    ): "column_issues' default range_slack is RANGE_SLACK",
    # -- CT policy --------------------------------------------------------------------------------
    (
        "mlstack/ct.py",
        "evaluate_policy",
        "if trigger in ALERT_TRIGGERS and cooldown > 0 and last_retrain_at is not None:",
        "if trigger in ALERT_TRIGGERS and cooldown >= 0 and last_retrain_at is not None:",
    ): "with ct.cooldown_s = 0 the cooldown cannot hold anyway: elapsed is clamped at >= 0 and "
    "`elapsed < 0` is never true",
    (
        "mlstack/ct.py",
        "TriggerController.submit",
        'extra = {"retry_after_s": round(verdict.retry_after_s or 0, 1)}',
        'extra = {"retry_after_s": round(verdict.retry_after_s or 1, 1)}',
    ): "submit asks the policy without a row count, so the only refusal is the cooldown, whose "
    "retry_after_s is always > 0: the `or` default is never used",
    (
        "mlstack/ct.py",
        "PipelineRunner.outcome",
        'if float(state.get("started_at", 0)) < started_at - 1:',
        'if float(state.get("started_at", 1)) < started_at - 1:',
    ): "a state without started_at is older than the run either way: 0 and 1 (epoch seconds) both "
    "precede any run's start",
}


def equivalence(path: str, function: str, before: str, after: str) -> str | None:
    """Why this mutant is equivalent, or None when it is not listed."""
    for key in ((path, function, before, after), (path, function, before, ANY), (path, function, ANY, ANY)):
        if key in EQUIVALENT:
            return EQUIVALENT[key]
    return None
