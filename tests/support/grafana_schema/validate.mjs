#!/usr/bin/env node
// Validate Grafana dashboard JSON against @grafana/schema (the version in package-lock.json).
//
// The dashboard is checked against the package's generated `Dashboard` type, and each panel's
// `options` and `fieldConfig.defaults.custom` against its panel plugin's `Options` / `FieldConfig`
// types. ts-json-schema-generator turns the TypeScript types into JSON Schema (closed objects:
// an unknown key is an error), ajv validates. Nothing here restates Grafana's model by hand; the
// only addition is LEGACY_ANNOTATION_KEYS below.
//
// Usage: node validate.mjs [--json] DASHBOARD.json...
// Exit: 0 every dashboard valid, 1 a dashboard invalid, 2 the check itself could not run.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { createGenerator } from "ts-json-schema-generator";

const require = createRequire(import.meta.url);
const Ajv = require("ajv");

const HERE = dirname(fileURLToPath(import.meta.url));
const TYPES = join(HERE, "types.ts");

// Keys Grafana's Prometheus datasource plugin reads from an annotation query, a legacy form the
// dashboard schema does not declare (the schema models only the built-in Grafana annotation).
// Each is allowed on annotations.list[*] only, as a string; nothing else is exempt.
export const LEGACY_ANNOTATION_KEYS = ["expr", "step", "tagKeys", "textFormat", "titleFormat"];

// Panel plugin -> its @grafana/schema types (types.ts). `custom: null`: the plugin declares no
// custom field config, so fieldConfig.defaults.custom must be absent or empty.
const PANEL_TYPES = {
  bargauge: { options: "BarGaugePanelOptions", custom: null },
  stat: { options: "StatPanelOptions", custom: null },
  table: { options: "TablePanelOptions", custom: "TablePanelFieldConfig" },
  timeseries: { options: "TimeSeriesPanelOptions", custom: "TimeSeriesPanelFieldConfig" },
};

function schemas() {
  const generator = createGenerator({
    path: TYPES,
    type: "*",
    skipTypeCheck: true,
    additionalProperties: false,
    expose: "export",
    topRef: true,
  });
  const dashboard = generator.createSchema("DashboardModel");
  const annotation = dashboard.definitions.AnnotationQuery;
  for (const key of LEGACY_ANNOTATION_KEYS) {
    if (key in annotation.properties) throw new Error(`${key} is in the schema now: drop it from the allow-list`);
    annotation.properties[key] = { type: "string", description: "allow-listed legacy Prometheus annotation key" };
  }
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  ajv.addSchema(dashboard, "dashboard");
  // `panels` items are `Panel | RowPanel` (anyOf), for which ajv reports why *each* branch failed.
  // Each panel is checked against the branch its own `type` selects instead, so a broken panel reads
  // as its own errors (a `row` must then be a valid RowPanel, as Grafana treats it).
  const validators = {
    dashboard: ajv.getSchema("dashboard"),
    panel: ajv.getSchema("dashboard#/definitions/Panel"),
    row: ajv.getSchema("dashboard#/definitions/RowPanel"),
  };
  const names = new Set(Object.values(PANEL_TYPES).flatMap((t) => [t.options, t.custom]).filter(Boolean));
  for (const name of names) validators[name] = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(generator.createSchema(name));
  return validators;
}

function errorsOf(validate, data, prefix) {
  if (validate(data)) return [];
  return validate.errors.map((e) => ({ path: prefix + e.instancePath, message: e.message, params: e.params }));
}

function* panelsOf(dashboard) {
  if (!Array.isArray(dashboard?.panels)) return;
  for (const [i, panel] of dashboard.panels.entries()) {
    yield [`/panels/${i}`, panel];
    for (const [j, inner] of (panel.panels ?? []).entries()) yield [`/panels/${i}/panels/${j}`, inner];
  }
}

export function check(validators, dashboard) {
  const panels = Array.isArray(dashboard?.panels) ? dashboard.panels : [];
  const errors = errorsOf(validators.dashboard, dashboard, "").filter((e) => !/^\/panels\/\d+/.test(e.path));
  for (const [i, panel] of panels.entries()) {
    errors.push(...errorsOf(panel?.type === "row" ? validators.row : validators.panel, panel, `/panels/${i}`));
  }
  for (const [where, panel] of panelsOf(dashboard)) {
    if (panel.type === "row") continue;
    const plugin = PANEL_TYPES[panel.type];
    if (!plugin) {
      errors.push({ path: `${where}/type`, message: `panel type ${JSON.stringify(panel.type)} has no schema mapping here`, params: {} });
      continue;
    }
    errors.push(...errorsOf(validators[plugin.options], panel.options ?? {}, `${where}/options`));
    const custom = panel.fieldConfig?.defaults?.custom;
    if (plugin.custom) {
      errors.push(...errorsOf(validators[plugin.custom], custom ?? {}, `${where}/fieldConfig/defaults/custom`));
    } else if (custom && Object.keys(custom).length) {
      errors.push({ path: `${where}/fieldConfig/defaults/custom`, message: `${panel.type} declares no custom field config`, params: { keys: Object.keys(custom) } });
    }
  }
  const allowListed = [];
  for (const [i, annotation] of (dashboard.annotations?.list ?? []).entries()) {
    for (const key of LEGACY_ANNOTATION_KEYS) if (key in annotation) allowListed.push(`/annotations/list/${i}/${key}`);
  }
  return { valid: errors.length === 0, errors, allowListed };
}

function main(argv) {
  const json = argv.includes("--json");
  const files = argv.filter((a) => a !== "--json");
  if (!files.length) {
    console.error("usage: validate.mjs [--json] DASHBOARD.json...");
    return 2;
  }
  const schema = require("@grafana/schema/package.json");
  // The schema version this Grafana writes; an older dashboard is migrated on every load.
  const latestSchemaVersion = require("@grafana/schema").defaultDashboard.schemaVersion;
  const validators = schemas();
  const dashboards = files.map((file) => {
    let model;
    try {
      model = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      return { file, valid: false, errors: [{ path: "", message: `not JSON: ${err.message}`, params: {} }], allowListed: [] };
    }
    return { file, ...check(validators, model) };
  });
  const report = { schema: `${schema.name}@${schema.version}`, latestSchemaVersion, allowList: LEGACY_ANNOTATION_KEYS, dashboards };
  if (json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    for (const d of dashboards) {
      console.log(`${d.valid ? "ok  " : "FAIL"} ${basename(d.file)} (${report.schema}; allow-listed: ${d.allowListed.join(", ") || "none"})`);
      for (const e of d.errors) console.log(`     ${e.path || "/"}: ${e.message} ${JSON.stringify(e.params)}`);
    }
  }
  return dashboards.every((d) => d.valid) ? 0 : 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    console.error(`dashboard schema check could not run: ${err.stack ?? err}`);
    process.exitCode = 2;
  }
}
