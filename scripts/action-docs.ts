// Keeps the inputs and outputs tables of docs/reference.md in step with action.yml, the action's contract.
//   npx tsx scripts/action-docs.ts          rewrite the tables in docs/reference.md
//   npx tsx scripts/action-docs.ts --check  fail when docs/reference.md differs from action.yml
import { readFileSync, writeFileSync } from 'node:fs';
import { format, resolveConfig } from 'prettier';
import { parse } from 'yaml';

interface ActionYaml {
  inputs: Record<string, { description: string; required?: boolean; default?: string }>;
  outputs: Record<string, { description: string }>;
}

const REFERENCE = 'docs/reference.md';

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ').trim();

/** The inputs and outputs tables of one action.yml. */
function tables(file: string): { inputs: string; outputs: string } {
  const action = parse(readFileSync(file, 'utf8')) as ActionYaml;
  const inputs = [
    '| Input | Required | Default | Description |',
    '| --- | --- | --- | --- |',
    ...Object.entries(action.inputs).map(
      ([name, input]) =>
        `| \`${name}\` | ${input.required ? 'yes' : 'no'} | ${input.default ? `\`${input.default}\`` : ''} | ${cell(input.description)} |`,
    ),
  ].join('\n');
  const outputs = [
    '| Output | Description |',
    '| --- | --- |',
    ...Object.entries(action.outputs).map(([name, output]) => `| \`${name}\` | ${cell(output.description)} |`),
  ].join('\n');
  return { inputs, outputs };
}

/** Each action.yml and the marker prefix of its tables in the reference. */
const ACTIONS: [file: string, prefix: string][] = [
  ['action.yml', ''],
  ['alias/action.yml', 'alias-'],
  ['remove/action.yml', 'remove-'],
  ['check/action.yml', 'check-'],
];

function replaceBetween(text: string, marker: string, body: string, file: string): string {
  const start = `<!-- ${marker}:start (generated from ${file} by scripts/action-docs.ts) -->`;
  const end = `<!-- ${marker}:end -->`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) throw new Error(`${REFERENCE} lacks the ${marker} markers`);
  return `${text.slice(0, from + start.length)}\n${body}\n${text.slice(to)}`;
}

const readme = readFileSync(REFERENCE, 'utf8');
let generated = readme;
for (const [file, prefix] of ACTIONS) {
  const { inputs, outputs } = tables(file);
  generated = replaceBetween(
    replaceBetween(generated, `${prefix}inputs`, inputs, file),
    `${prefix}outputs`,
    outputs,
    file,
  );
}
// Formatted as `prettier --check` expects it, so the two checks agree.
const updated = await format(generated, { ...(await resolveConfig(REFERENCE)), parser: 'markdown' });
if (process.argv.includes('--check')) {
  if (updated !== readme) {
    console.error(`${REFERENCE} inputs/outputs tables differ from the action.yml files: run \`npm run docs\`.`);
    process.exit(1);
  }
  console.log(`${REFERENCE} tables match the action.yml files.`);
} else {
  writeFileSync(REFERENCE, updated);
}
