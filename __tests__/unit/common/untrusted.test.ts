import { describe, expect, it } from '@jest/globals';
import { ActionError } from '../../../src/common/errors.js';
import { logUntrusted, untrusted, untrustedBlock, untrustedLine } from '../../../src/common/untrusted.js';

const HOSTILE = 'x\n::warning title=Spoofed::x\r\n  ::add-mask::y\n##[error]y\u001b[2J';

/**
 * The lines of a log that the runner would read as commands: those that start with "::" after
 * leading blanks, outside a ::stop-commands::TOKEN … ::TOKEN:: block, and any line holding "##[".
 */
function runnerCommands(log: string): string[] {
  const commands: string[] = [];
  let stoppedUntil: string | undefined;
  for (const line of log.split('\n')) {
    const trimmed = line.trimStart();
    if (trimmed.includes('##[')) commands.push(line);
    if (stoppedUntil !== undefined) {
      if (trimmed === stoppedUntil) stoppedUntil = undefined;
      continue;
    }
    const stop = /^::stop-commands::(.+)$/.exec(trimmed);
    if (stop) stoppedUntil = `::${stop[1]}::`;
    else if (trimmed.startsWith('::')) commands.push(line);
  }
  return commands;
}

describe('untrusted: one value for a log line or a message', () => {
  it('keeps plain values as they are', () => {
    for (const value of ['Crynux', 'bookworm', 'Crynux:bookworm:default:amd64', '202601010000', 'ssh-ed25519'])
      expect(untrusted(value)).toBe(value);
  });

  it('JSON-quotes anything else: no line break, no "##[", and the same string when read back', () => {
    for (const value of [HOSTILE, '##[error]y', '###[x', 'two words', '', '"quoted"']) {
      const escaped = untrusted(value);
      expect(escaped).not.toMatch(/[\n\r\u001b]/);
      expect(escaped).not.toContain('##[');
      expect(JSON.parse(escaped)).toBe(value);
      expect(runnerCommands(`Inspect ${escaped}`)).toEqual([]);
    }
  });
});

describe('untrustedLine: text embedded after the start of a log line', () => {
  it('has no line break and no "##["', () => {
    const line = untrustedLine(`The server's incus-simplestreams ${HOSTILE}`);
    expect(line).not.toMatch(/[\n\r\u001b]/);
    expect(runnerCommands(line)).toEqual([]);
  });
});

describe('untrustedBlock: multi-line output between stop-commands markers', () => {
  it('keeps every line readable, inside markers with a random token', () => {
    const block = untrustedBlock(HOSTILE);
    const token = /^::stop-commands::([0-9a-f]{32})$/.exec(block[0] ?? '')?.[1];
    expect(token).toBeDefined();
    expect(block.at(-1)).toBe(`::${token}::`);
    expect(block.slice(1, -1)).toEqual(['x', '::warning title=Spoofed::x', '  ::add-mask::y', '##\\[error]y?[2J']);
    expect(runnerCommands(block.join('\n'))).toEqual([]);
    // Without the markers, the runner would read three commands from the same text.
    expect(runnerCommands(HOSTILE)).toHaveLength(3);
    expect(untrustedBlock('a')[0]).not.toBe(untrustedBlock('a')[0]);
  });

  it('cannot be ended early by output that guesses at the token', () => {
    const block = untrustedBlock('::deadbeef::\n::warning::x', 'feedface');
    expect(runnerCommands(block.join('\n'))).toEqual([]);
  });

  it('logs nothing for empty output', () => {
    const lines: string[] = [];
    logUntrusted('', (line) => lines.push(line));
    expect(lines).toEqual([]);
    logUntrusted('::warning::x', (line) => lines.push(line));
    expect(runnerCommands(lines.join('\n'))).toEqual([]);
  });
});

describe('ActionError messages', () => {
  it('escape the legacy "##[" command; line breaks stay for core.error to escape', () => {
    const error = new ActionError(`metadata: architecture "${HOSTILE}" is unknown`);
    expect(error.message).not.toContain('##[');
    expect(error.message).toContain('\n::warning title=Spoofed::x');
  });
});
