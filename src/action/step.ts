/** How every entry point ends: a failure fails the step with one error that names the input and the fix. */
import * as core from '@actions/core';
import { ActionError, describeError, withoutControlCharacters, withoutLegacyCommands } from '../common/errors.js';
import { writeFailureSummary } from './summary.js';

/**
 * The last resort: an error thrown outside the step's promise chain (an event emitter without a
 * listener, say) still ends the step with an ::error, never silently.
 */
function installLastResort(): void {
  const fail = (error: unknown): void => {
    core.error(withoutLegacyCommands(withoutControlCharacters(`Unexpected error: ${describeError(error)}`)), {
      title: 'lxc-publish failed',
    });
    process.exit(core.ExitCode.Failure);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
}

/**
 * Runs the step's work; never throws. `failureHeading` titles the job summary of a failure. The
 * work hands its settings to `onSettings` once read: with `summary: false` a failure writes no
 * summary either (a failure before the settings are read, a bad input, still does, unless the
 * summary input itself says false).
 */
export async function runStep(
  failureHeading: string,
  work: (onSettings: <T extends { summary: boolean }>(settings: T) => T) => Promise<void>,
): Promise<void> {
  let summary = core.getInput('summary').trim().toLowerCase() !== 'false';
  installLastResort();
  try {
    await work((settings) => {
      summary = settings.summary;
      return settings;
    });
  } catch (error) {
    // ActionError messages already name the input and the fix; anything else is unexpected.
    // (An ActionError's message is already sanitised; core.error escapes its line breaks.)
    const message =
      error instanceof ActionError
        ? error.message
        : withoutLegacyCommands(withoutControlCharacters(`Unexpected error: ${describeError(error)}`));
    const input = error instanceof ActionError ? error.input : undefined;
    core.error(message, { title: input ? `lxc-publish: check the ${input} input` : 'lxc-publish failed' });
    process.exitCode = core.ExitCode.Failure;
    if (summary && process.env['GITHUB_STEP_SUMMARY'])
      await writeFailureSummary(message, failureHeading).catch(() => undefined);
  }
}
