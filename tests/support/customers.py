"""The committed mixed-type fixture (tests/fixtures/customers.csv) as the example config reads it."""

from __future__ import annotations

from mlstack.config import REPO_ROOT, ColumnOverride, DataConfig

CUSTOMERS_CSV = REPO_ROOT / "tests" / "fixtures" / "customers.csv"


def customers_data_config(**columns: ColumnOverride) -> DataConfig:
    """The `data:` section of model-training/examples/customers.yaml, with per-column overrides."""
    return DataConfig(
        source="csv",
        csv_path=str(CUSTOMERS_CSV),
        target="outcome",
        id_column="customer_id",
        drop_columns=["notes"],
        columns=columns,
    )
