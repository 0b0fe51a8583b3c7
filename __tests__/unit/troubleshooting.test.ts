// TROUBLESHOOTING.md has an entry for every error the action can report (every ActionError in src/).
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { collectErrorMessages, entryKey } from '../../scripts/error-messages.js';

const guide = readFileSync(new URL('../../TROUBLESHOOTING.md', import.meta.url), 'utf8').replace(/\s+/g, ' ');

describe('TROUBLESHOOTING.md', () => {
  const messages = collectErrorMessages();

  it('finds the errors in src/', () => {
    expect(messages.length).toBeGreaterThan(50);
    // The jump-* inputs share the registry's messages: they are listed with the input they name.
    expect(messages.some((message) => message.template.includes('Host key verification failed'))).toBe(true);
  });

  it('has an entry for every error message', () => {
    const missing = messages.filter((message) => !guide.includes(entryKey(message)));
    expect(missing.map((message) => `${message.file}: ${entryKey(message)}`)).toEqual([]);
  });

  it('groups entries by input', () => {
    for (const input of new Set(messages.map((message) => message.input))) {
      if (input === '' || input === '…') continue;
      expect(guide).toContain(`## \`${input}\``);
    }
  });
});
