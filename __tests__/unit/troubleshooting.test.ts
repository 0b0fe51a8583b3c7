// TROUBLESHOOTING.md, written by hand, quotes every error the action can report (every ActionError
// in src/) under a **Symptom:**, and each entry says what is seen, why, and what to do.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { collectErrorMessages, type ErrorMessage } from '../../scripts/error-messages.js';
import { guideEntries, guideProblems, opening, uncovered } from '../../scripts/troubleshooting.js';

const guide = readFileSync(new URL('../../TROUBLESHOOTING.md', import.meta.url), 'utf8');

const message = (template: string): ErrorMessage => ({ template, input: '', file: 'src/example.ts' });

describe('TROUBLESHOOTING.md', () => {
  const messages = collectErrorMessages();
  const entries = guideEntries(guide);

  it('finds the errors in src/', () => {
    expect(messages.length).toBeGreaterThan(100);
    // The jump-* inputs share the registry's messages.
    expect(messages.some((found) => found.template.includes('Host key verification failed'))).toBe(true);
    // Messages built elsewhere are followed: a remote command's failure, the lock's busy message.
    expect(messages.some((found) => found.template.includes('failed on the server: it exited with status'))).toBe(true);
    expect(messages.some((found) => found.template.includes('is busy: another run has held its lock'))).toBe(true);
    // Subclasses of ActionError count too.
    expect(messages.some((found) => found.template.includes('but clients could not be confirmed to get it'))).toBe(
      true,
    );
  });

  it('quotes every error message under a Symptom', () => {
    expect(uncovered(messages, guide).map((found) => `${found.file}: ${opening(found)}`)).toEqual([]);
  });

  it('gives every entry a Symptom, a Cause and a Fix', () => {
    expect(entries.length).toBeGreaterThan(40);
    for (const entry of entries) {
      expect({ heading: entry.heading, symptom: entry.symptom !== '' }).toEqual({
        heading: entry.heading,
        symptom: true,
      });
      expect({ heading: entry.heading, cause: entry.cause !== '' }).toEqual({ heading: entry.heading, cause: true });
      expect({ heading: entry.heading, fix: entry.fix !== '' }).toEqual({ heading: entry.heading, fix: true });
    }
  });

  it('never sends the reader back to the message', () => {
    expect(guide).not.toMatch(/see the message/i);
    expect(guideProblems(messages, guide)).toEqual([]);
  });

  it('says in a comment that a test checks it', () => {
    expect(guide).toMatch(/<!--[^>]*unit test[^>]*-->/);
  });

  it('covers the clients and the public check, which are not errors of the action', () => {
    const headings = entries.map((entry) => entry.heading).join('\n');
    expect(headings).toMatch(/A new release does not show in `incus image list`/);
    expect(headings).toMatch(/A registry with a self-signed certificate/);
    expect(headings).toMatch(/Image published; the public check failed/);
    expect(guide).toContain('servercerts/');
    expect(guide).toContain('~/.cache/incus');
  });

  it('keeps the anchors other pages link to', () => {
    // README.md links here.
    const anchors = entries.map((entry) =>
      entry.heading
        .toLowerCase()
        .replace(/[^\p{L}\p{N} -]/gu, '')
        .replace(/ /g, '-'),
    );
    expect(anchors).toContain('a-new-release-does-not-show-in-incus-image-list');
    expect(anchors).toContain('a-registry-with-a-self-signed-certificate');
  });

  it('links every section from the table of contents', () => {
    const sections = [...guide.matchAll(/^## (.+)$/gm)].map((match) => match[1] ?? '');
    expect(sections.length).toBeGreaterThan(5);
    for (const section of sections) {
      const anchor = section
        .toLowerCase()
        .replace(/[^\p{L}\p{N} -]/gu, '')
        .replace(/ /g, '-');
      expect(guide).toContain(`](#${anchor})`);
    }
  });
});

describe('the coverage rule', () => {
  const guideWith = (symptom: string): string =>
    `## Section\n\n### An entry\n\n**Symptom:** ${symptom}\n\n**Cause:** why.\n\n**Fix:** what to do.\n`;

  it('matches "…" in a message against any text in the Symptom', () => {
    const found = message('…: "…" is not a TCP port number (1-65535); leave it empty for 22.');
    expect(
      uncovered([found], guideWith('`jump-port: "…" is not a TCP port number (1-65535); leave it empty for 22.`')),
    ).toEqual([]);
  });

  it('needs the opening of a long message, not all of it', () => {
    const found = message(
      `The registry in … is busy: another run has held its lock for more than … seconds (lock-timeout). Try again later.`,
    );
    expect(opening(found)).toBe('The registry in … is busy: another run has held its lock for more');
    expect(uncovered([found], guideWith(`\`${opening(found)} …\``))).toEqual([]);
    expect(uncovered([found], guideWith('`The registry in … is busy …`'))).toEqual([found]);
  });

  it('counts only text under **Symptom:**', () => {
    const found = message('metadata: metadata.yaml in "…" is not a YAML mapping.');
    const inCause = `## S\n\n### E\n\n**Symptom:** something.\n\n**Cause:** \`${found.template}\`\n\n**Fix:** do.\n`;
    expect(uncovered([found], inCause)).toEqual([found]);
  });

  it('reports an entry without a Cause or a Fix', () => {
    expect(guideProblems([], '## S\n\n### Broken\n\n**Symptom:** x\n')).toEqual([
      '"Broken" has no **Cause:**',
      '"Broken" has no **Fix:**',
    ]);
  });
});
