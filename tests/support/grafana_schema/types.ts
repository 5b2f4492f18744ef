// The @grafana/schema types dashboards are validated against (validate.mjs turns each into a JSON
// Schema with ts-json-schema-generator). The raw types are Grafana's generated schema (kinds), not
// the frontend's looser "veneer" types. Aliases give each root a unique name for the generator.
import type { Dashboard } from "@grafana/schema/dist/esm/raw/dashboard/x/dashboard_types.gen";
import type { Options as BarGaugeOptions } from "@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen";
import type { Options as StatOptions } from "@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen";
import type {
  FieldConfig as TableFieldConfig,
  Options as TableOptions,
} from "@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen";
import type {
  FieldConfig as TimeSeriesFieldConfig,
  Options as TimeSeriesOptions,
} from "@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen";

export type DashboardModel = Dashboard;
export type BarGaugePanelOptions = BarGaugeOptions;
export type StatPanelOptions = StatOptions;
export type TablePanelOptions = TableOptions;
export type TablePanelFieldConfig = TableFieldConfig;
export type TimeSeriesPanelOptions = TimeSeriesOptions;
export type TimeSeriesPanelFieldConfig = TimeSeriesFieldConfig;
