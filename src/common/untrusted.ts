/**
 * Text the action does not control (metadata.yaml, the server's index and output, a web
 * server's answers) on its way into the log or an error message.
 *
 * The runner reads workflow commands from the log: a line that, after leading blanks, starts with
 * "::" (`::warning::`, `::add-mask::`, `::stop-commands::` …), and the legacy "##[" form anywhere
 * in a line. So untrusted text never reaches the log as it is: a single value is printed plain
 * only when it is made of harmless characters, JSON-quoted otherwise (no line break survives, and
 * "#[" is escaped); multi-line output is printed between `::stop-commands::` markers whose token
 * the server cannot guess, with "#[" escaped and control characters replaced.
 *
 * Error messages (ActionError) are printed by core.error as one `::error::` line: it escapes
 * line breaks and "%" in the message, and a "::" after the command's own is data, not a command.
 * Only "##[" needs escaping there, which the ActionError constructor does (common/errors.ts).
 */
import { randomBytes } from 'node:crypto';
import { oneLine, withoutControlCharacters, withoutLegacyCommands } from './errors.js';

/** Characters a plain value may hold and still be printed as it is. */
const PLAIN = /^[A-Za-z0-9._:/+@,=~-]+$/;

/**
 * One untrusted value for a log line or a message: as it is when plain (a product name, a
 * serial), otherwise JSON-quoted, with "#[" written as "\u0023[" (the same string in JSON).
 */
export function untrusted(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  if (PLAIN.test(text)) return text;
  return JSON.stringify(text).replace(/#\[/g, '\\u0023[');
}

/**
 * A log line that embeds untrusted text somewhere after its own start (never at it): line
 * breaks and other control characters become "?", "#[" is escaped.
 */
export function untrustedLine(text: string): string {
  return withoutLegacyCommands(oneLine(text));
}

/**
 * Multi-line untrusted output (a script's), as log lines: between `::stop-commands::TOKEN` and
 * `::TOKEN::`, so that the runner reads no line of it as a command; control characters other
 * than tabs become "?", and "#[" is escaped.
 */
export function untrustedBlock(text: string, token = randomBytes(16).toString('hex')): string[] {
  const lines = withoutLegacyCommands(withoutControlCharacters(text.replace(/\r\n/g, '\n'))).split('\n');
  return [`::stop-commands::${token}`, ...lines, `::${token}::`];
}

/** Logs multi-line untrusted output (see untrustedBlock); nothing for empty output. */
export function logUntrusted(text: string, log: (line: string) => void): void {
  if (text !== '') log(untrustedBlock(text).join('\n'));
}
