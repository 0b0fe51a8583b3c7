// What the code under test writes to stdout (workflow commands: ::add-mask::, ::warning:: …),
// captured per test instead of printed.
import { afterEach, beforeEach, jest } from '@jest/globals';

/** Registers the hooks; call at the top level of a test file. Returns what the current test wrote. */
export function capturedStdout(): () => string[] {
  let written: string[] = [];
  beforeEach(() => {
    written = [];
    jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(chunk.toString());
      return true;
    });
  });
  afterEach(() => {
    jest.restoreAllMocks();
  });
  return () => written;
}
