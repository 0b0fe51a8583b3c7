// Writes TROUBLESHOOTING.md from the errors the action can report (scripts/error-messages.ts),
// grouped by the input each names.
//   npx tsx scripts/troubleshooting.ts          rewrite TROUBLESHOOTING.md
//   npx tsx scripts/troubleshooting.ts --check  fail when it differs
import { readFileSync, writeFileSync } from 'node:fs';
import { format, resolveConfig } from 'prettier';
import { collectErrorMessages, entryKey, type ErrorMessage } from './error-messages.js';

/** "what failed. what to do": the first sentence says what it means, the rest what to do. */
function split(template: string): { means: string; todo: string } {
  const match = /^(.+?[.!?])\s+(?=[A-Z`"(])([\s\S]+)$/.exec(template.replace(/\s+/g, ' ').trim());
  return match ? { means: match[1] as string, todo: match[2] as string } : { means: template, todo: '' };
}

const code = (text: string): string => {
  const fence = text.includes('`') ? '``' : '`';
  return `${fence}${text.includes('`') ? ' ' : ''}${text}${text.includes('`') ? ' ' : ''}${fence}`;
};

function render(messages: ErrorMessage[]): string {
  const groups = new Map<string, ErrorMessage[]>();
  for (const message of messages) {
    const group =
      message.input === '' ? 'No single input' : message.input === '…' ? 'The input the message names' : message.input;
    const list = groups.get(group) ?? [];
    if (!list.some((other) => entryKey(other) === entryKey(message))) list.push(message);
    groups.set(group, list);
  }
  const names = [...groups.keys()].sort((a, b) => {
    const special = (name: string) => (name.startsWith('No single') || name.startsWith('The input') ? 1 : 0);
    return special(a) - special(b) || a.localeCompare(b);
  });
  const parts = [
    '# Troubleshooting',
    '',
    '<!-- Generated from the error messages in src/ by scripts/troubleshooting.ts (npm run troubleshooting); a unit test checks that every message has an entry. -->',
    '',
    'Every error the action reports, grouped by the input it names (the error\'s title says "check the INPUT input"). ' +
      'In a message, "…" stands for what the action fills in: a path, a host, a value the server printed. Each entry ' +
      'says what the error means and what to do; the message itself repeats the fix.',
    '',
    'With step debug on (re-run the job with debug logging, or set the `ACTIONS_STEP_DEBUG` secret or variable to ' +
      '`true`), the log also shows each command sent to the server, how long each step took, the SSH handshake and ' +
      'the host key the server presented.',
    '',
  ];
  for (const name of names) {
    parts.push(`## ${name.includes(' ') ? name : `\`${name}\``}`, '');
    for (const message of groups.get(name) ?? []) {
      const { means, todo } = split(message.template);
      parts.push(`- ${code(entryKey(message))}`, '');
      parts.push(`  - What it means: ${means.replace(/…/g, '(…)')} (raised in \`${message.file}\`)`);
      parts.push(`  - What to do: ${todo === '' ? 'see the message; it names the value to change.' : todo}`, '');
    }
  }
  return parts.join('\n');
}

const file = 'TROUBLESHOOTING.md';
const text = await format(render(collectErrorMessages()), { ...(await resolveConfig(file)), parser: 'markdown' });
if (process.argv.includes('--check')) {
  if (readFileSync(file, 'utf8') !== text) {
    console.error(`${file} differs from the error messages in src/: run \`npm run troubleshooting\`.`);
    process.exit(1);
  }
  console.log(`${file} lists every error message.`);
} else {
  writeFileSync(file, text);
}
