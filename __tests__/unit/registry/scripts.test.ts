// Every server-side script parses under dash and bash, and shellcheck finds nothing in it, read as
// POSIX sh and as bash (the server runs them with `sh -c`, whatever the user's login shell).
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { ALL_SCRIPTS } from '../../../src/registry/scripts.js';

const SOURCE = 'src/registry/server';

function check(command: string, args: string[], script: string): { status: number | null; output: string } {
  const result = spawnSync(command, args, { input: script, encoding: 'utf8' });
  if (result.error) throw new Error(`${command} cannot be run (${result.error.message}): run scripts/bootstrap.sh`);
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe.each(ALL_SCRIPTS.map((script) => [script.name, script] as const))('server script %s', (_name, script) => {
  it.each(['dash', 'bash'])('parses under %s', (shell) => {
    expect(check(shell, ['-n'], script.text)).toEqual({ status: 0, output: '' });
  });

  it.each(['sh', 'bash'])('passes shellcheck as %s', (dialect) => {
    expect(check('shellcheck', ['--shell', dialect, '--severity', 'style', '-'], script.text)).toEqual({
      status: 0,
      output: '',
    });
  });
});

// The files as they are read and edited, their fragments followed (what runs is checked above).
describe.each(readdirSync(SOURCE).filter((name) => name.endsWith('.sh')))('server script file %s', (file) => {
  it('passes shellcheck with its fragments', () => {
    const result = spawnSync('shellcheck', ['-x', '-P', 'SCRIPTDIR', '--shell', 'sh', '--severity', 'style', file], {
      cwd: SOURCE,
      encoding: 'utf8',
    });
    expect({ status: result.status, output: `${result.stdout}${result.stderr}` }).toEqual({ status: 0, output: '' });
  });
});

describe('the script check', () => {
  it('fails on a script with a syntax error or a shellcheck finding', () => {
    expect(check('dash', ['-n'], 'if then').status).not.toBe(0);
    expect(check('shellcheck', ['--shell', 'sh', '-'], 'rm -rf $dir/*').status).not.toBe(0);
  });

  it('covers every script the registry runs', () => {
    expect(ALL_SCRIPTS.map((script) => script.name)).toEqual([
      'lxc-publish-registry-lock',
      'lxc-publish-image-lock',
      'lxc-publish-reset',
      'lxc-publish-write',
      'lxc-publish-read',
      'lxc-publish-stage',
      'lxc-publish-delta',
      'lxc-publish-commit',
      'lxc-publish-fenced',
      'lxc-publish-inspect',
      'lxc-publish-hash',
    ]);
  });
});
