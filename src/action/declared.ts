/**
 * Only declared inputs. The runner passes every `with:` key as an INPUT_<NAME> variable and only
 * warns about one the action does not declare: a misspelt `host-fingerprnt` would leave host key
 * pinning at its default and the run green. Every such variable fails the step instead, naming
 * the closest declared input.
 */
import { ActionError } from '../common/errors.js';
import { untrusted } from '../common/untrusted.js';

/** The variable the runner sets for an input (name upper-cased, spaces to underscores). */
const variableOf = (input: string): string => `INPUT_${input.replace(/ /g, '_').toUpperCase()}`;

/** The number of single-character edits between two strings (Levenshtein). */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/** The declared input closest to `name`, when it is close enough to be a slip. */
export function closestInput(name: string, declared: readonly string[]): string | undefined {
  let best: { input: string; distance: number } | undefined;
  for (const input of declared) {
    const distance = editDistance(name, input);
    if (!best || distance < best.distance) best = { input, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(best.input.length / 3)) ? best.input : undefined;
}

/** Fails when the environment holds an input variable that `declared` does not name. */
export function refuseUndeclaredInputs(declared: readonly string[], env: NodeJS.ProcessEnv = process.env): void {
  const known = new Set(declared.map(variableOf));
  const unknown = Object.keys(env)
    .filter((variable) => variable.startsWith('INPUT_') && !known.has(variable))
    .map((variable) => variable.slice('INPUT_'.length).toLowerCase())
    .sort();
  if (unknown.length === 0) return;
  const named = unknown.map((name) => ({ name, closest: closestInput(name, declared) }));
  const [only] = named;
  const what =
    named.length === 1 && only
      ? `${untrusted(only.name)} is not an input of this action${only.closest ? `: did you mean ${only.closest}?` : '.'}`
      : `These are not inputs of this action: ${named
          .map(({ name, closest }) => `${untrusted(name)}${closest ? ` (did you mean ${closest}?)` : ''}`)
          .join(', ')}.`;
  throw new ActionError(
    `${what} A misspelt input would be ignored and leave its setting at the default (a misspelt host-fingerprint ` +
      "would turn host key pinning off), so the step stops here. Fix the name in the step's with: block, or " +
      'remove it; docs/reference.md lists every input.',
    named.find(({ closest }) => closest !== undefined)?.closest,
  );
}
