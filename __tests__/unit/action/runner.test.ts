import { describe, expect, it } from '@jest/globals';
import { checkPlatform } from '../../../src/action/runner.js';
import { ActionError } from '../../../src/common/errors.js';

describe('checkPlatform', () => {
  it('accepts Linux', () => {
    expect(() => checkPlatform('linux')).not.toThrow();
  });

  it.each(['darwin', 'win32', 'freebsd'] as const)('refuses %s, naming it and where to run instead', (platform) => {
    expect(() => checkPlatform(platform)).toThrow(ActionError);
    expect(() => checkPlatform(platform)).toThrow(
      new RegExp(`this job runs on ${platform}\\. .*runs-on: ubuntu-latest`),
    );
  });
});
