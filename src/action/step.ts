/** How every entry point ends: a failure fails the step with one error that names the input and the fix. */
import * as core from '@actions/core';
import {
  ActionError,
  describeError,
  FailedAfterPublishing,
  withoutControlCharacters,
  withoutLegacyCommands,
} from '../common/errors.js';
import { writeFailureSummary } from './summary.js';

/**
 * The last resort: an error thrown where no caller catches it (an event handler, a stream, a
 * promise nobody awaits), or a run that ends without settling, still fails the step with one
 * ::error line, instead of ending the process with a stack trace only, or with none. Returns
 * what marks the run as finished.
 */
export function installLastResortHandlers(): () => void {
  let reported = false;
  let finished = false;
  const fail = (message: string): void => {
    process.exitCode = core.ExitCode.Failure;
    if (reported) return;
    reported = true;
    core.error(message, { title: 'lxc-publish failed' });
  };
  const report = (error: unknown): void => {
    fail(error instanceof ActionError ? error.message : `Unexpected error: ${describeError(error)}`);
    const summary = process.env['GITHUB_STEP_SUMMARY']
      ? writeFailureSummary(describeError(error)).catch(() => undefined)
      : Promise.resolve();
    void summary.finally(() => process.exit(core.ExitCode.Failure));
  };
  process.on('uncaughtException', report);
  process.on('unhandledRejection', report);
  process.on('exit', () => {
    if (!finished) fail('Unexpected error: the run ended before it finished (nothing was left to wait for).');
  });
  return () => {
    finished = true;
  };
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
    const heading = error instanceof FailedAfterPublishing ? error.heading : failureHeading;
    if (summary && process.env['GITHUB_STEP_SUMMARY'])
      await writeFailureSummary(message, heading).catch(() => undefined);
  }
}
