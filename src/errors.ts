/**
 * An error the user can act on: the message says what failed and what to do.
 * `input` names the action input involved, when there is one.
 */
export class ActionError extends Error {
  constructor(
    message: string,
    readonly input?: string,
  ) {
    super(message);
    this.name = 'ActionError';
  }
}

/** Text of any thrown value, for messages. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
