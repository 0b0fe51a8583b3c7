/**
 * Errors the user can act on, and the one sanitiser for text that reaches the log or a message.
 */

/**
 * An error the user can act on: the message says what failed and what to do.
 * `input` names the action input involved, when there is one.
 */
export class ActionError extends Error {
  constructor(
    message: string,
    readonly input?: string,
  ) {
    // Messages quote inputs and server output: no control character (a terminal escape, say)
    // reaches the log as it is. Line breaks and tabs stay (core.error escapes them), and the
    // legacy "##[" log command is escaped (see common/untrusted.ts).
    super(withoutLegacyCommands(withoutControlCharacters(message)));
    this.name = 'ActionError';
  }
}

/**
 * A failure after the image was published: the step fails, but its summary must not say the
 * image was not published (the heading says what did happen).
 */
export class FailedAfterPublishing extends ActionError {
  constructor(
    message: string,
    input?: string,
    readonly heading = 'Image published; the public check failed',
  ) {
    super(message, input);
  }
}

const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
const CONTROL_CHARACTERS_BUT_LINE_BREAKS_AND_TABS = /[\u0000-\u0008\u000b-\u001f\u007f]/g;

/** Whether the text holds any control character (newline and tab included). */
export function hasControlCharacters(text: string): boolean {
  return CONTROL_CHARACTERS.test(text);
}

/** Replaces control characters other than newline and tab with "?". */
export function withoutControlCharacters(text: string): string {
  return text.replace(CONTROL_CHARACTERS_BUT_LINE_BREAKS_AND_TABS, '?');
}

/** "#[" with its bracket escaped, so that no "##[" (a legacy log command, read anywhere in a line) remains. */
export function withoutLegacyCommands(text: string): string {
  return text.replace(/#\[/g, '#\\[');
}

/** One line of text for a message: every control character, newline and tab included, as "?". */
export function oneLine(text: string): string {
  return text.replace(new RegExp(CONTROL_CHARACTERS.source, 'g'), '?');
}

/** Text of any thrown value, for messages. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
