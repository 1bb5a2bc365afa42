// Checks a Grafana dashboard file against Grafana's own published schema,
// the TypeScript types of @grafana/schema (Dashboard, and each panel
// plugin's Options and FieldConfig), by type-checking the file's contents
// as literals of those types: a misspelt, misplaced or mistyped field fails.
// Then checks what types cannot: unique panel ids, panels inside the
// 24-column grid and not overlapping, every query naming the datasource
// variable, and every $variable defined.
//
// Usage: node validate.mjs DEPS_DIR DASHBOARD.json
// DEPS_DIR holds node_modules with this directory's package.json installed
// (check.sh makes it, outside the checkout).

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const [depsDir, dashboardPath] = process.argv.slice(2);
if (!depsDir || !dashboardPath) {
  console.error("usage: node validate.mjs DEPS_DIR DASHBOARD.json");
  process.exit(2);
}
const ts = createRequire(path.join(path.resolve(depsDir), "package.json"))("typescript");
const dashboard = JSON.parse(fs.readFileSync(dashboardPath, "utf8"));
const problems = [];

// Panel plugins whose option types are checked; others are refused, so a
// new panel type gets its check before it is shipped.
const PLUGINS = {
  timeseries: { module: "TimeSeriesPanelCfg_types.gen", fieldConfig: true },
  stat: { module: "StatPanelCfg_types.gen", fieldConfig: false },
  table: { module: "TablePanelCfg_types.gen", fieldConfig: true },
};

function typeCheck() {
  const lines = [
    `import type { Dashboard } from "@grafana/schema/dist/esm/raw/dashboard/x/Dashboard_types.gen";`,
    // The schema's string enums (ThresholdsMode, LegendDisplayMode, ...) as
    // the unions of their values, which is what a JSON file holds.
    "type Json<T> = T extends string ? (string extends T ? string : `${T}`)",
    "  : T extends Array<infer U> ? Array<Json<U>>",
    "  : T extends object ? { [K in keyof T]: Json<T[K]> } : T;",
  ];
  for (const [plugin, { module, fieldConfig }] of Object.entries(PLUGINS)) {
    const names = [`Options as ${plugin}Options`];
    if (fieldConfig) names.push(`FieldConfig as ${plugin}FieldConfig`);
    lines.push(
      `import type { ${names.join(", ")} } from "@grafana/schema/dist/esm/raw/composable/${plugin}/panelcfg/x/${module}";`,
    );
  }
  lines.push(`export const dashboard: Json<Dashboard> = ${JSON.stringify(dashboard, null, 2)};`);
  for (const panel of dashboard.panels ?? []) {
    if (panel.type === "row") continue;
    if (!(panel.type in PLUGINS)) {
      problems.push(`panel ${panel.id} "${panel.title}": type ${panel.type} has no schema check here (add it to PLUGINS)`);
      continue;
    }
    lines.push(`export const options${panel.id}: Json<${panel.type}Options> = ${JSON.stringify(panel.options ?? {})};`);
    const custom = panel.fieldConfig?.defaults?.custom;
    if (custom && PLUGINS[panel.type].fieldConfig) {
      lines.push(`export const custom${panel.id}: Json<${panel.type}FieldConfig> = ${JSON.stringify(custom)};`);
    } else if (custom) {
      problems.push(`panel ${panel.id} "${panel.title}": ${panel.type} panels have no custom field config`);
    }
  }
  const file = path.join(path.resolve(depsDir), "dashboard-under-check.ts");
  fs.writeFileSync(file, lines.join("\n") + "\n");
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    skipLibCheck: true,
  });
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    const where = d.file ? d.file.getLineAndCharacterOfPosition(d.start ?? 0) : null;
    const source = where ? d.file.text.split("\n")[where.line].trim() : "";
    problems.push(`schema: ${text}${source ? `\n    at: ${source.slice(0, 160)}` : ""}`);
  }
}

function layoutCheck() {
  const ids = new Set();
  const placed = [];
  for (const panel of dashboard.panels ?? []) {
    const name = `panel ${panel.id} "${panel.title}"`;
    if (ids.has(panel.id)) problems.push(`${name}: id used twice`);
    ids.add(panel.id);
    const g = panel.gridPos;
    if (!g) {
      problems.push(`${name}: no gridPos`);
      continue;
    }
    if (g.x < 0 || g.w <= 0 || g.x + g.w > 24) problems.push(`${name}: outside the 24-column grid`);
    for (const other of placed) {
      const o = other.gridPos;
      const overlap = g.x < o.x + o.w && o.x < g.x + g.w && g.y < o.y + o.h && o.y < g.y + g.h;
      if (overlap) problems.push(`${name}: overlaps panel ${other.id} "${other.title}"`);
    }
    placed.push(panel);
  }
}

function queryCheck() {
  const variables = new Set((dashboard.templating?.list ?? []).map((v) => v.name));
  const builtin = new Set(["__rate_interval", "__interval", "__range"]);
  if (!variables.has("datasource")) problems.push("templating: no `datasource` variable");
  for (const panel of dashboard.panels ?? []) {
    if (panel.type === "row") continue;
    const name = `panel ${panel.id} "${panel.title}"`;
    if (panel.datasource?.uid !== "${datasource}") problems.push(`${name}: datasource is not \${datasource}`);
    if (!panel.targets?.length) problems.push(`${name}: no queries`);
    for (const target of panel.targets ?? []) {
      if (!target.expr) problems.push(`${name}: query ${target.refId} has no expr`);
      if (target.datasource?.uid !== "${datasource}") problems.push(`${name}: query ${target.refId} does not use \${datasource}`);
      for (const [, variable] of (target.expr ?? "").matchAll(/\$\{?(\w+)/g)) {
        if (!variables.has(variable) && !builtin.has(variable)) {
          problems.push(`${name}: query ${target.refId} uses $${variable}, which is not defined`);
        }
      }
    }
  }
}

if (typeof dashboard.uid !== "string" || !dashboard.title) problems.push("dashboard: uid and title are required");
typeCheck();
layoutCheck();
queryCheck();

if (problems.length > 0) {
  console.error(`${dashboardPath}: ${problems.length} problem(s)`);
  for (const problem of problems) console.error(`  - ${problem}`);
  process.exit(1);
}
const queries = dashboard.panels.flatMap((p) => p.targets ?? []).length;
console.log(`${dashboardPath}: valid (${dashboard.panels.length} panels, ${queries} queries)`);
