"""Surviving mutants that are equivalent to the original code, each with the reason.

Keyed by (staged file, function, original line, mutated line), stripped, as `make mutation` prints
them: stable across runs and line moves, unlike mutmut's numbering. ANY as the mutated line covers
every mutation of that line, and as the original line every mutation of the function (code that
cannot run: say why).
"""

from __future__ import annotations

ANY = "*"

_REQUEST = "mlstack_api/request_validation.py"
_BATCH = "mlstack/batch_validation.py"
_QUARANTINE = "mlstack/quarantine.py"
_FEEDBACK = "mlstack/feedback.py"
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
    (
        "mlstack/schema.py",
        "FeatureSchema.model_frame",
        "return pd.DataFrame(typed, index=frame.index)",
        ANY,
    ): "each typed column is a Series derived from frame's column (numeric_values, category_text keep "
    "its index), and a DataFrame built from equally indexed Series takes that index anyway",
    # -- batch validation -------------------------------------------------------------------------
    (
        _BATCH,
        "validate_batch",
        'raise AssertionError(f"instances[{first}]: the bulk checks refused what the schema accepts")',
        ANY,
    ): "unreachable: validate_instance raises for every row the bulk checks refuse (the hypothesis "
    "property test_same_verdict_and_same_error_as_row_by_row pins that agreement)",
    (
        _BATCH,
        "CategoricalKind.bad_rows",
        "bad |= np.fromiter(map(_empty, values), dtype=bool, count=len(values))",
        "bad = np.fromiter(map(_empty, values), dtype=bool, count=len(values))",
    ): "the first update of an all-False `bad`: `=` and `|=` agree",
    **{
        (_BATCH, "CategoricalKind.bad_rows", before, after): "np.fromiter's count only preallocates: "
        "the iterator yields exactly len(values) items either way"
        for before, after in (
            (
                "bad |= np.fromiter(map(_empty, values), dtype=bool, count=len(values))",
                "bad |= np.fromiter(map(_empty, values), dtype=bool, )",
            ),
            (
                "present = np.fromiter(map(_present, values), dtype=bool, count=len(values))",
                "present = np.fromiter(map(_present, values), dtype=bool, )",
            ),
            (
                "inside = np.fromiter(map(known.__contains__, values), dtype=bool, count=len(values))",
                "inside = np.fromiter(map(known.__contains__, values), dtype=bool, )",
            ),
        )
    },
    (
        _BATCH,
        "CategoricalKind.bad_rows",
        "inside = np.fromiter(map(known.__contains__, values), dtype=bool, count=len(values))",
        "inside = np.fromiter(map(known.__contains__, values), dtype=None, count=len(values))",
    ): "dtype=None gives 1.0/0.0 floats, and np.logical_not of them is the same boolean mask",
    (
        _BATCH,
        "CategoricalKind.to_block",
        "block = np.empty((len(rows), 1), dtype=object)",
        "block = np.empty((len(rows), 2), dtype=object)",
    ): "only column 0 is written and read (bad_rows, ValidatedBatch.column by the kind's one position); "
    "an unused second column of None changes no verdict and no value",
    **{
        (
            _BATCH,
            "NullableNumericKind.to_block",
            "nulls = np.array(rows, dtype=object) == None  # noqa: E711 - element-wise, on an object array",
            after,
        ): "only reached when a NaN is present: with a None among the rows numpy makes the array object "
        "dtype by itself; with none, a float array == None is all False, as the object one is"
        for after in (
            "nulls = np.array(rows, dtype=None) == None  # noqa: E711 - element-wise, on an object array",
            "nulls = np.array(rows, ) == None  # noqa: E711 - element-wise, on an object array",
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
    **{
        (
            "mlstack/data_validation.py",
            "row_reasons",
            'return pd.Series(["; ".join(r) for r in reasons], index=frame.index, dtype=object)',
            after,
        ): "a Series of strings, or an empty one, is object dtype in pandas 2 without asking"
        for after in (
            'return pd.Series(["; ".join(r) for r in reasons], index=frame.index, dtype=None)',
            'return pd.Series(["; ".join(r) for r in reasons], index=frame.index, )',
        )
    },
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
    # -- feedback ---------------------------------------------------------------------------------
    (
        _FEEDBACK,
        "check_feedback",
        "dataset.features, dataset.target, dataset.class_names, dataset.target_name, config.data",
        "dataset.features, dataset.target, dataset.class_names, None, config.data",
    ): "the fallback schema's target name is never read: check_rows reads its features, and the "
    "labels come from the class count",
    **{
        (_FEEDBACK, "with_feedback", before, after): "astype(None) is float64, as astype(float) is"
        for before, after in (
            (
                "added_rows = extra[[*names, dataset.target_name]]"
                '.assign(**{OBSERVED_AT: extra["ts"].astype(float)})',
                "added_rows = extra[[*names, dataset.target_name]]"
                '.assign(**{OBSERVED_AT: extra["ts"].astype(None)})',
            ),
            ('kept_ts = extra["feedback_ts"].astype(float)', 'kept_ts = extra["feedback_ts"].astype(None)'),
        )
    },
    (
        _FEEDBACK,
        "with_feedback",
        "merged = pd.concat([base, added_rows], ignore_index=True)",
        ANY,
    ): "the drop_duplicates on the next line renumbers the index (ignore_index=True) whatever concat left",
    **{
        (
            _FEEDBACK,
            "with_feedback",
            'observed = pd.Series([float("nan")] * base_rows, dtype="float64")',
            after,
        ): "a list of float NaNs is float64 without asking, and float('NAN') is NaN too"
        for after in (
            'observed = pd.Series([float("nan")] * base_rows, dtype=None)',
            'observed = pd.Series([float("nan")] * base_rows, )',
            'observed = pd.Series([float("NAN")] * base_rows, dtype="float64")',
        )
    },
    # -- feedback quarantine ----------------------------------------------------------------------
    (
        _QUARANTINE,
        "decide",
        "sa.select(feedback.c.prediction_id).where(feedback.c.prediction_id == prediction_id)",
        "sa.select(None).where(feedback.c.prediction_id == prediction_id)",
    ): "SQLAlchemy renders select(None) as SELECT NULL FROM feedback WHERE ...: a row exactly when the "
    "prediction is labelled, and only its presence is read",
    (
        _QUARANTINE,
        "decide",
        '"kind": OPERATOR if status == EXCLUDED else (entry["kind"] if entry else OPERATOR),',
        '"kind": OPERATOR if status == EXCLUDED else (entry["kind"] if (entry) or True else OPERATOR),',
    ): "a restore without a quarantine entry is refused a few lines above, so on this branch the entry "
    "is always there",
    **{
        (
            _QUARANTINE,
            "check_rows",
            "for row, problems in zip(listed, row_problems(listed, schema, labels), strict=True):",
            after,
        ): "row_problems returns one entry per row, so zip never has a tail to be strict about"
        for after in (
            "for row, problems in zip(listed, row_problems(listed, schema, labels), strict=None):",
            "for row, problems in zip(listed, row_problems(listed, schema, labels), ):",
            "for row, problems in zip(listed, row_problems(listed, schema, labels), strict=False):",
        )
    },
    (_QUARANTINE, "check_rows", "problems = []", "problems = None"): "only read by `if problems:` "
    "next, where [] and None are both false",
    (
        _QUARANTINE,
        "record_check",
        'usable_ids = {str(i) for i in check.usable["id"]} if not check.usable.empty else set()',
        'usable_ids = {str(i) for i in check.usable["id"]} if (not check.usable.empty) or True else set()',
    ): "FeedbackCheck.usable always has the id column, so the empty frame's ids are the empty set too",
    (
        _QUARANTINE,
        "row_problems",
        "for issue in column_issues(frame, schema, range_slack=RANGE_SLACK):",
        "for issue in column_issues(frame, schema, ):",
    ): "column_issues' default range_slack is RANGE_SLACK",
    **{
        (
            _QUARANTINE,
            "row_problems",
            "texts = row_reasons(frame, schema, range_slack=RANGE_SLACK) if len(frame) else "
            "pd.Series(dtype=object)",
            after,
        ): reason
        for after, reason in (
            (
                "texts = row_reasons(frame, schema, ) if len(frame) else pd.Series(dtype=object)",
                "row_reasons' default range_slack is RANGE_SLACK",
            ),
            (
                "texts = row_reasons(frame, schema, range_slack=RANGE_SLACK) if (len(frame)) or True "
                "else pd.Series(dtype=object)",
                "row_reasons of an empty frame is an empty Series too, and with no rows no text is read",
            ),
            (
                "texts = row_reasons(frame, schema, range_slack=RANGE_SLACK) if len(frame) else "
                "pd.Series(dtype=None)",
                "with no rows no text is read (and an empty Series is object dtype in pandas 2 anyway)",
            ),
        )
    },
}


def equivalence(path: str, function: str, before: str, after: str) -> str | None:
    """Why this mutant is equivalent, or None when it is not listed."""
    for key in ((path, function, before, after), (path, function, before, ANY), (path, function, ANY, ANY)):
        if key in EQUIVALENT:
            return EQUIVALENT[key]
    return None
