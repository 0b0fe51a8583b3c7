/**
 * What the inputs holding a YAML list of entries (mirrors, buckets) have in common: the list read
 * safely (no aliases, no duplicate keys), each entry a map of known keys with single values, a
 * name of its own, and secrets taken from environment variables that an entry names (masked, and
 * taken out of the environment once every entry is read).
 */
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ActionError, describeError, oneLine } from '../common/errors.js';
import { closestInput } from './declared.js';
import { maskSecrets } from './input-values.js';

export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** What a misspelt key looks like (keys are lower case; base64 text seldom is): shown back, anything else is not. */
export const KEY_LIKE = /^[a-z][a-z0-9_-]{0,39}$/;
const VARIABLE = /^[A-Z_][A-Z0-9_]{0,127}$/;
/** Variables of the runner and of the action's own inputs: never a key's place. */
const RESERVED_VARIABLE_PREFIXES = ['INPUT_', 'GITHUB_', 'RUNNER_', 'ACTIONS_'];
/** Variables every shell or runner sets: naming one is a mistake, and masking its value would garble the log. */
const RESERVED_VARIABLES = new Set([
  'CI',
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'PWD',
  'OLDPWD',
  'LANG',
  'LANGUAGE',
  'TERM',
  'HOSTNAME',
  'TMPDIR',
  'TZ',
  'NODE_OPTIONS',
  'ImageOS',
  'ImageVersion',
]);

/** An error about an entry of a YAML list input (mirrors, buckets), naming that input. */
export function listError(input: string, message: string): ActionError {
  return new ActionError(`${input}: ${message}`, input);
}

/** The text of a scalar value; anything else (a list, a map) is refused. */
export function scalar(value: unknown, key: string, label: string, input = 'mirrors'): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  throw listError(input, `${label}: ${key} must be a single value (text or a number), not a list or a map.`);
}

/** How one list input is read, for its messages. */
export interface ListShape {
  input: string;
  /** What the list holds, in the plural: servers, buckets. */
  entries: string;
  /** What an entry is: mirror, bucket. */
  noun: string;
  /** Its first keys, to show what an entry looks like: "host:, port: …". */
  keyHint: string;
  example: string;
}

/** The input's YAML text as a non-empty list, or an error naming the input. */
export function parseYamlList(text: string, shape: ListShape): unknown[] {
  let document: unknown;
  try {
    document = parseYaml(text, { uniqueKeys: true, maxAliasCount: 0, prettyErrors: false, logLevel: 'error' });
  } catch (error) {
    const reason = error instanceof YAMLParseError ? error.message.split('\n')[0] : describeError(error);
    throw listError(shape.input, `not a YAML list of ${shape.entries} (${oneLine(reason ?? '')}). ${shape.example}`);
  }
  if (!Array.isArray(document) || document.length === 0) {
    const first = shape.keyHint.split(':')[0] ?? '';
    throw listError(
      shape.input,
      `must be a YAML list of ${shape.entries}, one "- ${first}: …" entry each. ${shape.example}`,
    );
  }
  return document;
}

/**
 * One entry: a map of the shape's keys, each a single value (`key:` with nothing after it, YAML's
 * null, reads as empty when `nullIsEmpty`), with a valid name if it has one; and the label
 * messages give it ("entry 2 (eu)").
 */
export function readEntry<K extends string>(
  raw: unknown,
  position: number,
  shape: ListShape & { keys: readonly K[]; nullIsEmpty?: boolean },
): { entry: Partial<Record<K, string>>; label: string } {
  const label = `entry ${position}`;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw listError(shape.input, `${label} is not a map of keys (${shape.keyHint}). ${shape.example}`);
  }
  const entry: Partial<Record<K, string>> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (!(shape.keys as readonly string[]).includes(key)) {
      const closest = closestInput(key, shape.keys);
      // Shown back only when it looks like a key: anything else may be a secret pasted in.
      const shown = KEY_LIKE.test(key) ? key : 'a key (not shown, in case it is a secret)';
      throw listError(
        shape.input,
        `${label}: ${shown} is not a key of a ${shape.noun}${closest ? `: did you mean ${closest}?` : '.'} A ` +
          `${shape.noun} takes ${shape.keys.join(', ')}.`,
      );
    }
    entry[key as K] = value === null && shape.nullIsEmpty ? '' : scalar(value, key, label, shape.input);
  }
  const name = (entry as Partial<Record<string, string>>)['name'];
  if (name === undefined) return { entry, label };
  if (!NAME.test(name)) {
    throw listError(
      shape.input,
      `${label}: name ${JSON.stringify(oneLine(name))} must be 1 to 64 letters, digits, ".", "_" or "-".`,
    );
  }
  return { entry, label: `entry ${position} (${name})` };
}

/** Runs `read` with the step's environment; the variables it read are taken out of it afterwards, however it ends. */
export function withSecrets<T>(env: NodeJS.ProcessEnv, read: (secrets: SecretEnvironment) => T): T {
  const secrets: SecretEnvironment = { values: env, read: new Set() };
  try {
    return read(secrets);
  } finally {
    for (const variable of secrets.read) delete env[variable];
  }
}

/**
 * An environment variable's value, masked. The variables read are taken out of the environment
 * once every entry is read (no child process inherits them; two mirrors may share one).
 */
export function secretFromEnvironment(
  variable: string,
  key: string,
  label: string,
  env: SecretEnvironment,
  input = 'mirrors',
): string {
  if (
    !VARIABLE.test(variable) ||
    RESERVED_VARIABLES.has(variable) ||
    RESERVED_VARIABLE_PREFIXES.some((prefix) => variable.startsWith(prefix))
  ) {
    // Not quoted: a value given here by mistake may be the secret itself.
    throw listError(
      input,
      `${label}: ${key} must name an environment variable of capital letters, digits and "_" that is not the ` +
        `runner's or the shell's (INPUT_, GITHUB_, RUNNER_, ACTIONS_, CI, PATH, HOME …), such as EU_SSH_KEY. Its ` +
        'value is not shown here, in case it is a secret: give the name of the variable, and the secret in the ' +
        "step's env: under that name.",
    );
  }
  const value = env.values[variable] ?? '';
  env.read.add(variable);
  maskSecrets([value]);
  if (value.trim() === '') {
    throw listError(
      input,
      `${label}: ${key} names ${variable}, which is empty or not set in the step's environment. Add ` +
        `${variable}: \${{ secrets.${variable} }} under the step's env: (a secret reads as empty when it is not ` +
        'defined, belongs to an environment the job does not name, or the run is for a pull request from a fork).',
    );
  }
  return value;
}

/** The step's environment, and the variables read from it (removed from it once all are read). */
export interface SecretEnvironment {
  values: NodeJS.ProcessEnv;
  read: Set<string>;
}
