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
    // reaches the log as it is. Line breaks and tabs stay.
    super(withoutControlCharacters(message));
    this.name = 'ActionError';
  }
}

/** Replaces control characters other than newline and tab with "?". */
export function withoutControlCharacters(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '?');
}

/** Text of any thrown value, for messages. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
