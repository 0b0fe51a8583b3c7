// TROUBLESHOOTING.md is written by hand; this checks that it quotes every error the action can
// report (scripts/error-messages.ts) and that each entry says what is seen, why, and what to do.
//   npx tsx scripts/troubleshooting.ts [--check]   (npm run troubleshooting, and npm run lint)
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { collectErrorMessages, type ErrorMessage } from './error-messages.js';

/** How much fixed text (not "…") of a message's opening an entry must quote. */
const OPENING_FIXED_CHARACTERS = 60;

const oneLine = (text: string): string => text.replace(/\s+/g, ' ').trim();

/**
 * The opening of a message that an entry must quote: its text on one line, from the start to
 * where it has held 60 characters of fixed text (all of it when shorter), with "…" for what the
 * action fills in.
 */
export function opening(message: ErrorMessage): string {
  const text = oneLine(message.template);
  let fixed = 0;
  for (let index = 0; index < text.length; index += 1) {
    if (text[index] !== '…') fixed += 1;
    if (fixed >= OPENING_FIXED_CHARACTERS) {
      // Finish the word, so the quote need not stop mid-word.
      const end = text.slice(index + 1).search(/[\s…]/);
      return text.slice(0, end < 0 ? text.length : index + 1 + end);
    }
  }
  return text;
}

/** A pattern for the opening: its fixed pieces in order, each "…" standing for any text. */
function openingPattern(message: ErrorMessage): RegExp {
  const pieces = opening(message)
    .split('…')
    .map((piece) => piece.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/ /g, '\\s*'));
  return new RegExp(pieces.join('.*?'), 's');
}

export interface GuideEntry {
  heading: string;
  /** Each part's text on one line: `symptom` what follows **Symptom:** up to **Cause:**, and so on. */
  symptom: string;
  cause: string;
  fix: string;
}

/** The entries of the guide: every `###` heading and the Symptom, Cause and Fix parts under it. */
export function guideEntries(guide: string): GuideEntry[] {
  return guide
    .split(/^### /m)
    .slice(1)
    .map((chunk) => {
      const [heading = '', ...rest] = chunk.split('\n');
      const body = rest.join('\n').split(/^## /m)[0] ?? '';
      const part = (name: string, next: string | undefined): string => {
        const start = body.indexOf(`**${name}:**`);
        if (start < 0) return '';
        const after = body.slice(start + name.length + 5);
        const end = next === undefined ? -1 : after.indexOf(`**${next}:**`);
        return oneLine(end < 0 ? after : after.slice(0, end));
      };
      return {
        heading: heading.trim(),
        symptom: part('Symptom', 'Cause'),
        cause: part('Cause', 'Fix'),
        fix: part('Fix', undefined),
      };
    });
}

/** The messages no entry's Symptom quotes. */
export function uncovered(messages: ErrorMessage[], guide: string): ErrorMessage[] {
  const symptoms = guideEntries(guide).map((entry) => entry.symptom);
  return messages.filter((message) => {
    const pattern = openingPattern(message);
    return !symptoms.some((symptom) => pattern.test(symptom));
  });
}

/** What is wrong with the guide: uncovered messages, entries missing a part, useless advice. */
export function guideProblems(messages: ErrorMessage[], guide: string): string[] {
  const problems: string[] = [];
  for (const message of uncovered(messages, guide)) {
    problems.push(`no **Symptom:** quotes ${message.file}: \`${opening(message)}\``);
  }
  for (const entry of guideEntries(guide)) {
    for (const part of ['symptom', 'cause', 'fix'] as const) {
      if (entry[part] === '') problems.push(`"${entry.heading}" has no **${part[0]?.toUpperCase()}${part.slice(1)}:**`);
    }
  }
  if (/see the message/i.test(guide)) problems.push('it says "see the message": say what to do instead');
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = 'TROUBLESHOOTING.md';
  const messages = collectErrorMessages();
  const problems = guideProblems(messages, readFileSync(file, 'utf8'));
  if (problems.length > 0) {
    console.error(`${file}:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    console.error('Add or fix the entries (see the comment at the top of the file).');
    process.exit(1);
  }
  console.log(`${file} covers all ${messages.length} error messages.`);
}
