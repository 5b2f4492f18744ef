"""Surviving mutants that are equivalent to the original code, each with the reason.

Keyed by (staged file, function, original line, mutated line), stripped, as `make mutation` prints
them: stable across runs and line moves, unlike mutmut's numbering.
"""

from __future__ import annotations

EQUIVALENT: dict[tuple[str, str, str, str], str] = {
    (
        "mlstack/gate.py",
        "_signed",
        'return f"{value:+.4f}" if value == 0 or abs(value) >= 1e-4 else f"{value:+.2g}"',
        'return f"{value:+.4f}" if value == 0 or abs(value) > 1e-4 else f"{value:+.2g}"',
    ): "the branches differ only at |value| == 1e-4, where both formats print ±0.0001",
    (
        "mlstack_api/validation.py",
        "decode_json",
        "return orjson.loads(body)",
        "return orjson.loads(None)",
    ): "orjson.loads(None) raises orjson.JSONDecodeError, so the stdlib fallback parses the same body "
    "into the same values (both parse JSON numbers, strings and duplicate keys alike); only speed differs",
    (
        "mlstack_api/validation.py",
        "parse_instances",
        'field = f"instances[{exc.index}].{exc.field}" if exc.index is not None else exc.field',
        'field = f"instances[{exc.index}].{exc.field}" if (exc.index is not None) or True else exc.field',
    ): "the SchemaError reaching parse_instances always carries an index: fast_matrix hands over to "
    "to_matrix, which validates instance i with index=i, and an empty batch is refused before",
    **{
        (
            "mlstack/validation.py",
            "_check_column",
            "infinite = int(np.isinf(values.to_numpy(dtype=float, na_value=0.0)).sum())",
            f"infinite = int(np.isinf(values.to_numpy({args})).sum())",
        ): "only numeric, non-bool columns get here; pandas converts each of them (numpy ints and floats, "
        "nullable Int64/Float64) to a numeric array with or without dtype=float, and a missing value "
        "becomes 0.0, 1.0 or NaN: never infinite, so the count is the same"
        for args in (
            "dtype=None, na_value=0.0",
            "dtype=float, na_value=None",
            "na_value=0.0",
            "dtype=float, ",
            "dtype=float, na_value=1.0",
        )
    },
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
