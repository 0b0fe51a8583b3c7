// Publishing through src/ in the test process, as the runner would read the inputs: each test
// gets the log the action wrote (stdout is captured, not printed) and a clean environment.
import { afterEach, beforeEach, jest } from '@jest/globals';
import { readSettings } from '../../src/action/inputs.js';
import { publish } from '../../src/action/main.js';
import type { PublishResult } from '../../src/registry/publication.js';
import { setProcessInputs, type Inputs } from './action.js';

export interface InProcessPublisher {
  /** What the action has written to stdout in the current test. */
  log: () => string[];
  publishWith: (inputs: Inputs) => Promise<PublishResult>;
}

/** Registers the hooks; call at the top level of a test file. */
export function inProcessPublisher(): InProcessPublisher {
  const savedEnv = { ...process.env };
  let logged: string[] = [];
  beforeEach(() => {
    logged = [];
    jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      logged.push(chunk.toString());
      return true;
    });
  });
  afterEach(() => {
    jest.restoreAllMocks();
    process.env = { ...savedEnv };
  });
  return {
    log: () => logged,
    publishWith: (inputs) => {
      setProcessInputs(inputs);
      return publish(readSettings());
    },
  };
}
