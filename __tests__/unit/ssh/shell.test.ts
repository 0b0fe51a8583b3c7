import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { commandChain, commandLine, quoteArg } from '../../../src/ssh/shell.js';

/** Runs a command line in a real POSIX shell and returns the words printf received. */
function wordsSeenByShell(args: string[]): string[] {
  const output = execFileSync('/bin/sh', ['-c', commandLine(['printf', '%s\\0', ...args])]);
  return output.toString('utf8').split('\0').slice(0, -1);
}

const hostile = [
  'plain',
  'with space',
  "it's",
  '"double"',
  '$(touch /tmp/pwned)',
  '`id`',
  'a;b',
  'a|b',
  'a&&b',
  '$HOME',
  '*',
  '~',
  'back\\slash',
  "'';!'\"",
  '',
  '-n',
  'tab\there',
  'line\nbreak',
  'ünïcödé',
];

describe('quoteArg', () => {
  it('leaves safe words alone', () => {
    expect(quoteArg('/var/www/lxc/uploads')).toBe('/var/www/lxc/uploads');
    expect(quoteArg('TZ=UTC')).toBe('TZ=UTC');
  });

  it('quotes everything else', () => {
    expect(quoteArg("it's")).toBe(`'it'\\''s'`);
    expect(quoteArg('')).toBe(`''`);
  });

  it('refuses NUL, which no shell argument can carry', () => {
    expect(() => quoteArg('a\0b')).toThrow(/NUL/);
  });

  it('round-trips hostile strings through a real shell unchanged', () => {
    expect(wordsSeenByShell(hostile)).toEqual(hostile);
  });
});

describe('commandChain', () => {
  it('joins commands with && so a failure stops the chain', () => {
    expect(commandChain([['cd', '--', '/a b'], ['ls']])).toBe(`cd -- '/a b' && ls`);
    const output = execFileSync('/bin/sh', ['-c', `${commandChain([['false'], ['echo', 'ran']])} || echo stopped`]);
    expect(output.toString()).toBe('stopped\n');
  });

  it('refuses an empty command', () => {
    expect(() => commandLine([])).toThrow();
  });
});
