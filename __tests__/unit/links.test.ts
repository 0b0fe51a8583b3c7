// Every link in the README and the documentation resolves: a relative link names a file of the
// repository, and a #fragment names a heading of the page it points at (as GitHub makes anchors).
// The README's first publish stays on its first screen.
import { describe, expect, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(new URL('../..', import.meta.url).pathname);

/** The Markdown pages users read: the top-level ones and everything under docs/. */
function pages(): string[] {
  const top = ['README.md', 'TROUBLESHOOTING.md', 'CHANGELOG.md'];
  const walk = (dir: string): string[] =>
    readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
      const relative = path.join(dir, entry.name);
      if (entry.isDirectory()) return walk(relative);
      return entry.name.endsWith('.md') ? [relative] : [];
    });
  return [...top, ...walk('docs')];
}

/** Text outside fenced code blocks and inline code spans, where links are links. */
function prose(markdown: string): string {
  return markdown.replace(/^(```+|~~~+)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, blanks as hyphens; repeats get -1, -2. */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  const withoutFences = markdown.replace(/^(```+|~~~+)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  for (const match of withoutFences.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const text = (match[1] as string).replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  for (const match of markdown.matchAll(/<a (?:name|id)="([^"]+)"/g)) result.add(match[1] as string);
  return result;
}

/** The link targets of a page: [text](target), ![alt](target) and [label]: target. */
function links(markdown: string): string[] {
  const text = prose(markdown);
  const inline = [...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1] as string);
  const references = [...text.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)].map((m) => m[1] as string);
  return [...inline, ...references];
}

describe('links in the README and docs/', () => {
  const all = pages();

  it('finds the pages and their links', () => {
    expect(all).toEqual(expect.arrayContaining(['README.md', 'docs/reference.md', 'docs/server-setup.md']));
    expect(links(readFileSync(path.join(ROOT, 'README.md'), 'utf8')).length).toBeGreaterThan(10);
  });

  it.each(all)('%s: every relative link names a file, and every #fragment a heading there', (page) => {
    const broken: string[] = [];
    for (const target of links(readFileSync(path.join(ROOT, page), 'utf8'))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: (no network here)
      const [file = '', fragment] = target.split('#');
      const resolved = file === '' ? path.join(ROOT, page) : path.resolve(path.dirname(path.join(ROOT, page)), file);
      if (!resolved.startsWith(ROOT) || !existsSync(resolved)) {
        broken.push(`${target} (no such file)`);
        continue;
      }
      if (fragment !== undefined && statSync(resolved).isFile() && resolved.endsWith('.md')) {
        if (!anchors(readFileSync(resolved, 'utf8')).has(decodeURIComponent(fragment)))
          broken.push(`${target} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('makes anchors as GitHub does', () => {
    const made = anchors('# A `code` title (with v1.0)\n## Same\n## Same\n```\n# not a heading\n```\n');
    expect([...made]).toEqual(['a-code-title-with-v10', 'same', 'same-1']);
  });
});

describe('the README', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

  it('holds the whole first publish in its first 120 lines: server, secrets, workflow, launch', () => {
    const firstScreen = readme.split('\n').slice(0, 120).join('\n');
    const start = firstScreen.indexOf('## Your first publish');
    const end = firstScreen.indexOf('\n## ', start + 1);
    expect(start).toBeGreaterThan(0);
    expect(end).toBeGreaterThan(start); // the next section starts within the first 120 lines
    const firstPublish = firstScreen.slice(start, end);
    for (const step of ['incus-simplestreams', 'REGISTRY_SSH_KEY', 'uses: crynux/lxc-publish@v1', 'incus launch'])
      expect(firstPublish).toContain(step);
  });

  it('fills in every placeholder of the tested nginx config, and installs what its commands run', () => {
    const block = /### 1\. The server[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const filled = [...block.matchAll(/-e 's\|(__[A-Z_]+__)\|/g)].map((match) => match[1]);
    const conf = readFileSync(path.join(ROOT, 'docs/nginx/lxc-registry.conf'), 'utf8');
    expect(filled.sort()).toEqual([...new Set(conf.match(/__[A-Z_]+__/g))].sort());
    expect(block).toContain('docs/nginx/lxc-registry.conf');
    // A minimal Debian 12 has neither curl nor nginx: the second command installs them.
    expect(block.split('\n')[1]).toMatch(/apt-get install .*nginx-light.*curl/);
  });

  it('sets up the server in five commands', () => {
    const block = /### 1\. The server[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const commands = block.split('\n').filter((line) => line.trim() !== '' && !/^\s/.test(line));
    expect(commands).toHaveLength(5);
  });
});
