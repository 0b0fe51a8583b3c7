import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import * as core from '@actions/core';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  buildFailureSummary,
  buildSummary,
  formatSize,
  launchCommand,
  writeFailureSummary,
  writeSummary,
} from '../../../src/action/summary.js';
import { type PublishResult } from '../../../src/registry/publication.js';

const fingerprint = 'a'.repeat(64);

const result: PublishResult = {
  status: 'published',
  fingerprint,
  product: 'Crynux:bookworm:default:amd64',
  serial: '202601010000',
  aliases: ['crynux-node:v2.6.0', 'crynux-node:latest'],
  imageType: 'container',
  size: 3 * 1024 * 1024,
  files: [],
  aliasMoves: [],
  changedPaths: [],
};

/** The lines of the fenced code block that follows `label`. */
function block(summary: string, label: string): string[] {
  const after = summary.slice(summary.indexOf(label));
  const match = /^(`{3,})sh\n([\s\S]*?)\n\1$/m.exec(after);
  if (!match) throw new Error(`no code block after ${label}`);
  return (match[2] as string).split('\n');
}

describe('buildSummary', () => {
  it('shows the table and placeholder commands without a public URL', () => {
    const summary = buildSummary(result);
    expect(summary).toMatch(/^## Image published\n/);
    expect(summary).toContain('<tr><td>Status</td><td>published</td></tr>');
    expect(summary).toContain(`<tr><td>Fingerprint</td><td><code>${fingerprint}</code></td></tr>`);
    expect(summary).toContain('<tr><td>Product</td><td><code>Crynux:bookworm:default:amd64</code></td></tr>');
    expect(summary).toContain('<tr><td>Serial</td><td>202601010000</td></tr>');
    expect(summary).toContain(
      '<tr><td>Aliases</td><td><code>crynux-node:v2.6.0</code>, <code>crynux-node:latest</code></td></tr>',
    );
    expect(summary).toContain('<tr><td>Type</td><td>container</td></tr>');
    expect(summary).toContain('<tr><td>Size</td><td>3.0 MiB (3145728 bytes)</td></tr>');
    expect(summary).not.toContain('Public URL');
    expect(summary).not.toContain('Served');
    expect(summary).toContain('set <code>public-url</code>');
    expect(block(summary, 'With Incus:')).toEqual([
      'incus remote add REMOTE https://your-registry.example --protocol=simplestreams',
      'incus launch REMOTE:crynux-node:v2.6.0 my-instance',
    ]);
    expect(block(summary, 'With LXD:')).toEqual([
      'lxc remote add REMOTE https://your-registry.example --protocol=simplestreams',
      'lxc launch REMOTE:crynux-node:v2.6.0 my-instance',
    ]);
  });

  it('shows the checked URL as served and the real commands with it', () => {
    const publicCheck = {
      url: 'https://lxc.crynux.io',
      fingerprint: result.fingerprint,
      product: result.product,
      serial: result.serial,
      files: [],
      attempts: 1,
      elapsedSeconds: 0,
    };
    const summary = buildSummary(result, { publicUrl: 'https://lxc.crynux.io', remoteName: 'crynux', publicCheck });
    expect(summary).toContain(
      '<tr><td>Public URL</td><td><a href="https://lxc.crynux.io">https://lxc.crynux.io</a></td></tr>',
    );
    expect(summary).toMatch(/<tr><td>Served<\/td><td>yes: index.json, images.json and 0 files/);
    // Not checked (public-check: off), and checked in vain: the summary says which.
    expect(buildSummary(result, { publicUrl: 'https://lxc.crynux.io' })).toContain(
      '<tr><td>Served</td><td>not checked (public-check: off)</td></tr>',
    );
    expect(
      buildSummary(result, { publicUrl: 'https://lxc.crynux.io', publicFailure: 'public-url: <404> & more' }),
    ).toContain('<tr><td>Served</td><td><strong>not confirmed</strong>: public-url: &lt;404&gt; &amp; more</td></tr>');
    expect(summary).toContain('Add the registry as <code>crynux</code>');
    expect(summary).not.toContain('REMOTE');
    expect(block(summary, 'With Incus:')).toEqual([
      'incus remote add crynux https://lxc.crynux.io --protocol=simplestreams',
      'incus launch crynux:crynux-node:v2.6.0 my-instance',
    ]);
    expect(block(summary, 'With LXD:')).toEqual([
      'lxc remote add crynux https://lxc.crynux.io --protocol=simplestreams',
      'lxc launch crynux:crynux-node:v2.6.0 my-instance',
    ]);
  });

  it('derives the remote name from the URL when none is given, and details the check', () => {
    const summary = buildSummary(result, {
      publicUrl: 'https://lxc.crynux.io',
      publicCheck: {
        url: 'https://lxc.crynux.io',
        fingerprint,
        product: result.product,
        serial: result.serial,
        files: [
          { path: 'images/x.incus.tar.xz', size: 1 },
          { path: 'images/x.squashfs', size: 2 },
        ],
        attempts: 3,
        elapsedSeconds: 10.2,
      },
    });
    expect(block(summary, 'With Incus:')[0]).toBe(
      'incus remote add crynux https://lxc.crynux.io --protocol=simplestreams',
    );
    expect(summary).toContain(
      '<tr><td>Served</td><td>yes: index.json, images.json and 2 files with the right sizes (after 3 attempts, 10.2 s)</td></tr>',
    );
  });

  it('launches a VM with --vm, by fingerprint prefix without aliases; says unchanged', () => {
    const summary = buildSummary(
      { ...result, status: 'unchanged', aliases: [], imageType: 'virtual-machine' },
      { publicUrl: 'https://lxc.crynux.io', remoteName: 'crynux' },
    );
    expect(summary).toMatch(/^## Image already published\n/);
    expect(summary).toContain('<tr><td>Aliases</td><td>(none)</td></tr>');
    expect(block(summary, 'With Incus:')[1]).toBe('incus launch crynux:aaaaaaaaaaaa my-instance --vm');
    expect(block(summary, 'With LXD:')[1]).toBe('lxc launch crynux:aaaaaaaaaaaa my-instance --vm');
  });

  it('leaves the LXD commands out when asked', () => {
    const summary = buildSummary(result, { lxd: false });
    expect(summary).toContain('With Incus:');
    expect(summary).not.toContain('With LXD:');
    expect(summary).not.toContain('lxc launch');
  });

  it('escapes untrusted strings in the table and quotes them in the commands', () => {
    const summary = buildSummary({ ...result, aliases: ['<img src=x onerror=alert(1)>&"', '```evil'] });
    const table = summary.slice(0, summary.indexOf('</table>'));
    expect(table).not.toContain('<img');
    expect(summary).toContain('<code>&lt;img src=x onerror=alert(1)&gt;&amp;&quot;</code>');
    expect(block(summary, 'With Incus:')[1]).toBe(`incus launch 'REMOTE:<img src=x onerror=alert(1)>&"' my-instance`);
    // A backtick run in a command cannot close the code block early.
    const evil = buildSummary({ ...result, aliases: ['a```b'] });
    expect(evil).toContain(
      "````sh\nincus remote add REMOTE https://your-registry.example --protocol=simplestreams\nincus launch 'REMOTE:a```b' my-instance\n````",
    );
  });
});

describe('buildSummary: moves and dry runs', () => {
  const holder = (c: string, serial: string) => ({ product: `p<${c}>`, serial, fingerprint: c.repeat(64) });
  it('names each alias that moved, from where to where, escaped', () => {
    const summary = buildSummary({
      ...result,
      status: 'aliases-updated',
      aliasMoves: [
        {
          alias: 'crynux-node:latest',
          architecture: 'x86_64',
          type: 'container',
          from: holder('b', '1'),
          to: holder('a', '2'),
        },
        { alias: 'new<alias>', architecture: 'x86_64', type: 'container', from: null, to: holder('a', '2') },
      ],
    });
    expect(summary).toContain('## Image already published; aliases moved onto it');
    expect(summary).toContain(
      '<tr><td>Aliases moved</td><td><code>crynux-node:latest</code> (x86_64): from <code>p&lt;b&gt;</code> ' +
        `(<code>${'b'.repeat(12)}</code>) to <code>p&lt;a&gt;</code> (<code>${'a'.repeat(12)}</code>)<br>` +
        '<code>new&lt;alias&gt;</code> (x86_64): from nothing to <code>p&lt;a&gt;</code>',
    );
  });

  it('a dry run says nothing was published, what the publish would report, drop and try', () => {
    const summary = buildSummary(
      {
        ...result,
        status: 'dry-run',
        aliasMoves: [{ alias: 'l', architecture: 'x86_64', type: 'container', from: null, to: holder('a', '2') }],
        preview: { status: 'published', dropped: ['p:1 1'], deltaBases: ['202601010000'] },
      },
      { publicUrl: 'https://lxc.example.com' },
    );
    expect(summary).toContain('## Dry run: nothing was published');
    expect(summary).toContain('<tr><td>Status</td><td>dry-run (a publish would report published)</td></tr>');
    expect(summary).toContain('<tr><td>Aliases that would move</td>');
    expect(summary).toContain('<tr><td>keep-versions would drop</td><td><code>p:1 1</code></td></tr>');
    expect(summary).toContain('<tr><td>Deltas would be tried from</td><td>202601010000</td></tr>');
    // Nothing was checked, so nothing is said to be served.
    expect(summary).not.toContain('Served');
  });
});

describe('helpers', () => {
  it('formats sizes', () => {
    expect(formatSize(512)).toBe('512 bytes');
    expect(formatSize(1536)).toBe('1.5 KiB (1536 bytes)');
  });

  it('keeps launchCommand', () => {
    expect(launchCommand(result, 'crynux')).toBe('incus launch crynux:crynux-node:v2.6.0 my-instance');
  });
});

describe('writeSummary', () => {
  // @actions/core keeps the summary file's path once it has read it: one file for all tests.
  let dir: string;
  let file: string;
  const saved = process.env['GITHUB_STEP_SUMMARY'];

  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-summary-'));
    file = path.join(dir, 'summary.md');
    process.env['GITHUB_STEP_SUMMARY'] = file;
  });
  beforeEach(async () => {
    await fsp.writeFile(file, '');
    core.summary.emptyBuffer();
  });
  afterAll(async () => {
    if (saved === undefined) delete process.env['GITHUB_STEP_SUMMARY'];
    else process.env['GITHUB_STEP_SUMMARY'] = saved;
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('writes what buildSummary builds', async () => {
    const options = { publicUrl: 'https://lxc.crynux.io', remoteName: 'crynux' };
    await writeSummary(result, options);
    expect(await fsp.readFile(file, 'utf8')).toBe(buildSummary(result, options));
  });

  it('escapes the failure summary: a hostile value in the error message stays text', async () => {
    const hostile = '</code></pre><a href="https://evil.example/">click</a><script>alert(1)</script>\'&';
    const message = `metadata: metadata.yaml has an unknown architecture "${hostile}".\nUse x86_64 or aarch64.`;
    await writeFailureSummary(message);
    const written = await fsp.readFile(file, 'utf8');
    expect(written).toBe(buildFailureSummary(message));
    expect(written).not.toMatch(/<a[\s>]|<script|<\/code><\/pre><a/i);
    expect(written).toBe(
      '<h2>Image not published</h2>\n<pre><code>metadata: metadata.yaml has an unknown architecture ' +
        '&quot;&lt;/code&gt;&lt;/pre&gt;&lt;a href=&quot;https://evil.example/&quot;&gt;click&lt;/a&gt;' +
        '&lt;script&gt;alert(1)&lt;/script&gt;&#39;&amp;&quot;.\nUse x86_64 or aarch64.</code></pre>\n',
    );
    // The only tags are the summary's own.
    expect(written.match(/<\/?[a-z0-9]+/g)).toEqual(['<h2', '</h2', '<pre', '<code', '</code', '</pre']);
  });

  it('takes the remote name from the options, with a placeholder without one', async () => {
    await writeSummary(result, { remoteName: 'crynux' });
    expect(await fsp.readFile(file, 'utf8')).toContain('incus launch crynux:crynux-node:v2.6.0 my-instance');
    core.summary.emptyBuffer();
    await fsp.writeFile(file, '');
    await writeSummary(result);
    expect(await fsp.readFile(file, 'utf8')).toContain('incus launch REMOTE:crynux-node:v2.6.0 my-instance');
  });
});
