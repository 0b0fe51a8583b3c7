// Only declared inputs: a misspelt input fails the step, naming the input it was probably meant
// to be, instead of leaving that setting at its default (a misspelt host-fingerprint would turn
// host key pinning off).
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { closestInput, editDistance, refuseUndeclaredInputs } from '../../../src/action/declared.js';
import { DECLARED_INPUTS } from '../../../src/action/declared-inputs.js';

const publish = DECLARED_INPUTS.publish;

describe('refuseUndeclaredInputs', () => {
  it('passes the inputs action.yml declares, as the runner sets them', () => {
    const env = Object.fromEntries(publish.map((name) => [`INPUT_${name.toUpperCase()}`, 'x']));
    expect(() => refuseUndeclaredInputs(publish, { ...env, PATH: '/bin', GITHUB_OUTPUT: '/o' })).not.toThrow();
  });

  it('refuses a misspelt input, naming the one it was meant to be', () => {
    expect(() => refuseUndeclaredInputs(publish, { 'INPUT_HOST-FINGERPRNT': 'SHA256:x' })).toThrow(
      /^host-fingerprnt is not an input of this action: did you mean host-fingerprint\? A misspelt input would be ignored/,
    );
    expect(() => refuseUndeclaredInputs(publish, { INPUT_KEEP_VERSIONS: '2' })).toThrow(/did you mean keep-versions\?/);
    expect(() => refuseUndeclaredInputs(publish, { INPUT_ALIAS: 'a' })).toThrow(/did you mean aliases\?/);
  });

  it('names every stray input, and suggests nothing for one that resembles none', () => {
    let message = '';
    try {
      refuseUndeclaredInputs(publish, { INPUT_TOKEN: 'x', 'INPUT_WORKING-DIRECTORY': 'y' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^These are not inputs of this action: token, working-directory\. A misspelt/);
    expect(() => refuseUndeclaredInputs(publish, { INPUT_TOKEN: 'x', 'INPUT_KEEP-VERSION': '2' })).toThrow(
      /^These are not inputs of this action: keep-version \(did you mean keep-versions\?\), token\./,
    );
  });

  it('refuses the publish inputs in a sub-action that does not declare them', () => {
    expect(() => refuseUndeclaredInputs(DECLARED_INPUTS.alias, { INPUT_METADATA: 'incus.tar.xz' })).toThrow(
      /^metadata is not an input of this action/,
    );
  });
});

describe('the declared inputs', () => {
  it('are those of each action.yml', () => {
    for (const [entry, file] of [
      ['publish', 'action.yml'],
      ['alias', 'alias/action.yml'],
      ['remove', 'remove/action.yml'],
      ['check', 'check/action.yml'],
    ] as const) {
      const yaml = parse(readFileSync(file, 'utf8')) as { inputs: Record<string, unknown> };
      expect([...DECLARED_INPUTS[entry]]).toEqual(Object.keys(yaml.inputs));
    }
  });
});

describe('closestInput and editDistance', () => {
  it('measures single-character edits', () => {
    expect(editDistance('host-fingerprnt', 'host-fingerprint')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });

  it('suggests only an input close enough to be a slip', () => {
    expect(closestInput('retires', publish)).toBe('retries');
    expect(closestInput('simplestream-dir', publish)).toBe('simplestreams-dir');
    expect(closestInput('password', publish)).toBeUndefined();
  });
});
