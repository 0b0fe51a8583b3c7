// The public check against the real loopback registry (nginx over TLS with the harness's own CA).
// Node builds its trusted CA store once, at start, from NODE_EXTRA_CA_CERTS: the checks that must
// trust the harness CA run in a child node process started with it, as the runner starts the
// bundle. Checks in this process do not trust it, which is how a bad certificate looks.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { inputsFor, runBundle } from '../harness/action.js';
import { run } from '../harness/exec.js';
import { makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';
import { checkPublicRegistry, type PublicCheckResult } from '../../src/public/check.js';
import { defaultRemoteName } from '../../src/public/remote.js';

let registry: Registry;
let work: string;
let published: TestImage;
let fingerprint: string;

/** What a check in a child process gave: its result or its error, and its log lines. */
type ChildCheck =
  | { ok: true; result: PublicCheckResult; log: string[] }
  | { ok: false; name: string; message: string; input?: string; log: string[] };

const CHILD_SCRIPT = `
const { checkPublicRegistry } = await import(process.env.PUBLIC_MODULE);
const options = JSON.parse(process.env.CHECK_OPTIONS);
const log = [];
try {
  const result = await checkPublicRegistry({ ...options, log: (line) => log.push(line) });
  process.stdout.write(JSON.stringify({ ok: true, result, log }));
} catch (error) {
  process.stdout.write(JSON.stringify({ ok: false, name: error.name, message: error.message, input: error.input, log }));
}
`;

/** Runs checkPublicRegistry (the TypeScript source, through tsx) in a node process trusting the harness CA. */
async function checkInChild(options: {
  url?: string;
  fingerprint?: string;
  timeoutSeconds: number;
  retryDelayMs?: number;
}): Promise<ChildCheck> {
  const script = path.join(work, 'check.mjs');
  await fsp.writeFile(script, CHILD_SCRIPT);
  const result = await run(process.execPath, ['--import', 'tsx', script], {
    env: {
      PATH: process.env['PATH'],
      HOME: process.env['HOME'],
      NODE_EXTRA_CA_CERTS: registry.caFile,
      PUBLIC_MODULE: pathToFileURL(path.resolve('src/public/check.ts')).href,
      CHECK_OPTIONS: JSON.stringify({ url: registry.httpsUrl, fingerprint, ...options }),
    },
    timeoutMs: 120_000,
  });
  if (result.code !== 0 || result.stdout === '') {
    throw new Error(`the check process failed (${result.code}):\n${result.stderr}${result.stdout}`);
  }
  return JSON.parse(result.stdout) as ChildCheck;
}

function expectFailure(check: ChildCheck): Extract<ChildCheck, { ok: false }> {
  if (check.ok) throw new Error(`expected the check to fail, it passed: ${JSON.stringify(check.result)}`);
  expect(check.name).toBe('ActionError');
  expect(check.input).toBe('public-url');
  return check;
}

/** The image's files in the registry tree, as images.json names them. */
async function servedFiles(): Promise<{ metadata: string; rootfs: string }> {
  const images = path.join(registry.simplestreamsDir, 'images');
  const names = await fsp.readdir(images);
  const find = (suffix: string): string => {
    const name = names.find((entry) => entry.endsWith(suffix));
    if (!name) throw new Error(`no *${suffix} in ${images}: ${names.join(', ')}`);
    return path.join(images, name);
  };
  return { metadata: find('.incus.tar.xz'), rootfs: find('.squashfs') };
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-public-'));
  const dir = path.join(work, 'image');
  await fsp.mkdir(dir);
  published = await makeSplitContainerImage(dir, { os: 'Crynux', release: 'bookworm', variant: 'public' });
  fingerprint = published.fingerprint;
  // A real publish, by the bundle as the runner runs it.
  const result = await runBundle(inputsFor(registry, published, { aliases: 'crynux-node:v2.6.0' }));
  if (result.code !== 0) throw new Error(`publishing failed:\n${result.stdout}${result.stderr}`);
});
afterAll(async () => {
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

describe('checkPublicRegistry against nginx', () => {
  it('passes after a real publish: both indexes list the image, every file has its size', async () => {
    const check = await checkInChild({ timeoutSeconds: 30 });
    if (!check.ok) throw new Error(check.message);
    const files = await servedFiles();
    expect(check.result).toEqual({
      url: registry.httpsUrl,
      fingerprint,
      product: expect.stringMatching(/^Crynux:bookworm:public:amd64:\d{12}$/),
      serial: expect.stringMatching(/^\d{12}$/),
      files: expect.arrayContaining([
        { path: `images/${path.basename(files.metadata)}`, size: (await fsp.stat(files.metadata)).size },
        { path: `images/${path.basename(files.rootfs)}`, size: (await fsp.stat(files.rootfs)).size },
      ]),
      attempts: 1,
      elapsedSeconds: expect.any(Number),
    });
    expect(check.result.files).toHaveLength(2);
    expect(check.log).toEqual([
      expect.stringMatching(
        new RegExp(
          `serves ${fingerprint} \\(Crynux:bookworm:public:amd64:\\d{12} \\d{12}\\): .* 2 files with the right sizes$`,
        ),
      ),
    ]);
  });

  it('fails after the timeout for a fingerprint that is not published, saying so', async () => {
    const missing = 'f'.repeat(64);
    const started = Date.now();
    const check = expectFailure(await checkInChild({ fingerprint: missing, timeoutSeconds: 2, retryDelayMs: 500 }));
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(check.message).toMatch(
      new RegExp(`^public-url: ${registry.httpsUrl} does not serve image ${missing} \\(checked \\d+ times over 2 s`),
    );
    expect(check.message).toContain(`streams/v1/images.json does not list fingerprint ${missing} (not served yet)`);
    expect(check.message).toContain('raise public-check-timeout');
    expect(check.log.length).toBeGreaterThanOrEqual(2);
    expect(check.log[0]).toMatch(/^Not served yet \(attempt 1, \d s left\): streams\/v1\/images\.json does not list/);
  });

  it('reports a truncated file (wrong size) and a deleted one (404), and passes once they are back', async () => {
    const files = await servedFiles();
    const saved = path.join(work, 'saved');
    await fsp.mkdir(saved, { recursive: true });
    await fsp.copyFile(files.metadata, path.join(saved, 'metadata'));
    await fsp.copyFile(files.rootfs, path.join(saved, 'rootfs'));
    const rootfsSize = (await fsp.stat(files.rootfs)).size;
    try {
      await fsp.truncate(files.rootfs, 1000);
      await fsp.rm(files.metadata);
      const check = expectFailure(await checkInChild({ timeoutSeconds: 0 }));
      expect(check.message).toContain('(checked once, public-check-timeout 0 s)');
      expect(check.message).toContain(
        `images/${path.basename(files.rootfs)}: wrong size, 1000 bytes served instead of ${rootfsSize}`,
      );
      expect(check.message).toContain(`images/${path.basename(files.metadata)}: not served (HTTP 404)`);
      expect(check.message).toMatch(/purge the CDN/);

      // Put the files back while a check waits: a CDN catching up.
      const waiting = checkInChild({ timeoutSeconds: 60, retryDelayMs: 300 });
      await new Promise((resolve) => setTimeout(resolve, 2500));
      await fsp.copyFile(path.join(saved, 'metadata'), files.metadata);
      await fsp.copyFile(path.join(saved, 'rootfs'), files.rootfs);
      const recovered = await waiting;
      if (!recovered.ok) throw new Error(recovered.message);
      expect(recovered.result.attempts).toBeGreaterThan(1);
      expect(recovered.log[0]).toMatch(/^Not served yet \(attempt 1, \d+ s left\): .*wrong size/);
      expect(recovered.log.at(-1)).toMatch(/with the right sizes \(after \d+ attempts, [\d.]+ s\)$/);
    } finally {
      await fsp.copyFile(path.join(saved, 'metadata'), files.metadata);
      await fsp.copyFile(path.join(saved, 'rootfs'), files.rootfs);
    }
  });

  it('reports a certificate the runner does not trust, with the TLS hint', async () => {
    // This process was not started with the harness CA in NODE_EXTRA_CA_CERTS.
    const lines: string[] = [];
    const failure = checkPublicRegistry({
      url: registry.httpsUrl,
      fingerprint,
      timeoutSeconds: 0,
      log: (l) => lines.push(l),
    });
    await expect(failure).rejects.toMatchObject({ name: 'ActionError', input: 'public-url' });
    const message = await failure.catch((error: Error) => error.message);
    expect(message).toMatch(/streams\/v1\/index\.json: TLS error: unable to verify the first certificate/);
    expect(message).toContain('full chain');
    expect(message).toContain('TLS 1.3');
  });

  /** A node HTTPS server on loopback with the harness's certificate (trusted by checkInChild). */
  async function withServer(
    options: https.ServerOptions,
    handler: (req: IncomingMessage, res: ServerResponse) => void,
    body: (url: string) => Promise<void>,
  ): Promise<void> {
    const tls = path.join(registry.root, 'tls');
    const server = https.createServer(
      {
        cert: await fsp.readFile(path.join(tls, 'server.pem')),
        key: await fsp.readFile(path.join(tls, 'server.key')),
        ...options,
      },
      handler,
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await body(`https://127.0.0.1:${(server.address() as { port: number }).port}`);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }

  it('refuses a server without TLS 1.3, as the Incus client does', async () => {
    await withServer(
      { maxVersion: 'TLSv1.2' },
      (_req, res) => res.end('{}'),
      async (url) => {
        const check = expectFailure(await checkInChild({ url, timeoutSeconds: 0 }));
        expect(check.message).toMatch(/streams\/v1\/index\.json: TLS error: .*protocol version/i);
        expect(check.message).toContain('The Incus client requires TLS 1.3');
        expect(check.message).not.toContain('full chain');
      },
    );
  });

  it('follows redirects to another https host (a CDN), as the clients do', async () => {
    // The harness certificate names both 127.0.0.1 and localhost: two hosts for one nginx.
    const otherHost = registry.httpsUrl.replace('//127.0.0.1:', '//localhost:');
    expect(otherHost).not.toBe(registry.httpsUrl);
    const hosts: string[] = [];
    await withServer(
      {},
      (req, res) => {
        hosts.push(req.headers.host ?? '');
        res.writeHead(301, { location: `${otherHost}${req.url ?? '/'}` }).end();
      },
      async (url) => {
        const check = await checkInChild({ url, timeoutSeconds: 0 });
        if (!check.ok) throw new Error(check.message);
        expect(check.result.files).toHaveLength(2);
        expect(hosts.length).toBeGreaterThanOrEqual(4); // both indexes and both files came through it
      },
    );
  });

  it('refuses a redirect to http://, and more than five redirects in a row', async () => {
    const httpUrl = registry.httpsUrl.replace(/^https:/, 'http:');
    await withServer(
      {},
      (req, res) => res.writeHead(302, { location: `${httpUrl}${req.url ?? '/'}` }).end(),
      async (url) => {
        const check = expectFailure(await checkInChild({ url, timeoutSeconds: 0 }));
        expect(check.message).toContain(
          `streams/v1/index.json: redirected to ${httpUrl}/streams/v1/index.json, which is not an https:// address`,
        );
      },
    );
    // Each answer sends the client one hop further: /hop/1 → /hop/2 → … and never serves a file.
    await withServer(
      {},
      (req, res) => {
        const hop = Number(/^\/hop\/(\d+)\//.exec(req.url ?? '')?.[1] ?? 0);
        const rest = (req.url ?? '/').replace(/^\/hop\/\d+/, '');
        res.writeHead(302, { location: `/hop/${hop + 1}${rest}` }).end();
      },
      async (url) => {
        const check = expectFailure(await checkInChild({ url, timeoutSeconds: 0 }));
        expect(check.message).toMatch(
          /streams\/v1\/index\.json: more than 5 redirects \(the last one from https:\/\/127\.0\.0\.1:\d+\/hop\/5\/streams\/v1\/index\.json\)/,
        );
      },
    );
    // Five redirects are followed.
    await withServer(
      {},
      (req, res) => {
        const hop = Number(/^\/hop\/(\d+)\//.exec(req.url ?? '')?.[1] ?? 0);
        const rest = (req.url ?? '/').replace(/^\/hop\/\d+/, '');
        res.writeHead(302, { location: hop < 4 ? `/hop/${hop + 1}${rest}` : `${registry.httpsUrl}${rest}` }).end();
      },
      async (url) => {
        const check = await checkInChild({ url, timeoutSeconds: 0 });
        if (!check.ok) throw new Error(check.message);
      },
    );
  });

  it('follows redirects, as the clients do', async () => {
    await withServer(
      {},
      (req, res) => res.writeHead(302, { location: `${registry.httpsUrl}${req.url ?? '/'}` }).end(),
      async (url) => {
        const check = await checkInChild({ url, timeoutSeconds: 0 });
        if (!check.ok) throw new Error(check.message);
        expect(check.result.files).toHaveLength(2);
      },
    );
  });
});

describe('dist/index.js with public-url', () => {
  it('checks the registry after publishing and shows the commands with the real remote', async () => {
    const remote = defaultRemoteName(registry.httpsUrl);
    const result = await runBundle(
      inputsFor(registry, published, {
        aliases: 'crynux-node:v2.6.0',
        'public-url': registry.httpsUrl,
        'public-check-timeout': '30',
      }),
      { NODE_EXTRA_CA_CERTS: registry.caFile },
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`${registry.httpsUrl} serves ${fingerprint}`);
    expect(result.summary).toContain(`<a href="${registry.httpsUrl}">${registry.httpsUrl}</a>`);
    expect(result.summary).toMatch(/<tr><td>Served<\/td><td>yes/);
    expect(result.summary).toContain(`incus remote add ${remote} ${registry.httpsUrl} --protocol=simplestreams`);
    expect(result.summary).toContain(`incus launch ${remote}:crynux-node:v2.6.0 my-instance`);
    expect(result.summary).toContain(`lxc remote add ${remote} ${registry.httpsUrl} --protocol=simplestreams`);
    expect(result.summary).toContain(`lxc launch ${remote}:crynux-node:v2.6.0 my-instance`);
    expect(result.summary).not.toContain('REMOTE');
    // What a later step scripts against: the address clients add, and the command that launches.
    expect(result.outputs).toMatchObject({
      'registry-url': registry.httpsUrl,
      'launch-command': `incus launch ${remote}:crynux-node:v2.6.0`,
      'public-check': 'passed',
    });
    // The files a CDN would purge, as URLs under public-url.
    const paths = JSON.parse(result.outputs['changed-paths'] ?? '') as string[];
    expect(JSON.parse(result.outputs['changed-urls'] ?? '')).toEqual(
      paths.map((file) => `${registry.httpsUrl}/${file}`),
    );
  });

  it('fails the step when the registry does not serve the image at public-url, saying the image is published', async () => {
    const result = await runBundle(
      inputsFor(registry, published, {
        'public-url': `${registry.httpsUrl}/elsewhere`,
        'public-check-timeout': '0',
      }),
      { NODE_EXTRA_CA_CERTS: registry.caFile },
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /::error title=lxc-publish%3A check the public-url input::The image is published \([0-9a-f]{64}, status (published|unchanged)\), but clients could not be confirmed to get it: public-url: .*\/elsewhere does not serve image .*not served \(HTTP 404\).*\(public-check: fail\)/,
    );
    expect(result.outputs).toMatchObject({ fingerprint, 'public-check': 'failed' });
    // One story in the summary: published, not confirmed; never "not published".
    expect(result.summary).toContain('Image published; the public check failed');
    expect(result.summary).toMatch(/<tr><td>Served<\/td><td><strong>not confirmed<\/strong>: public-url: /);
    expect(result.summary).not.toContain('Image not published');
  });

  it('with public-check: warn, warns and passes; with off, does not check', async () => {
    // The runner does not trust the registry's certificate (no NODE_EXTRA_CA_CERTS): a self-signed test registry.
    const warned = await runBundle(
      inputsFor(registry, published, {
        'public-url': registry.httpsUrl,
        'public-check-timeout': '0',
        'public-check': 'warn',
      }),
    );
    expect(warned.code).toBe(0);
    expect(warned.stdout).toMatch(
      /^::warning title=lxc-publish%3A the public check failed::The image is published \(/m,
    );
    expect(warned.outputs).toMatchObject({ fingerprint, 'public-check': 'failed' });
    expect(warned.summary).toContain('<strong>not confirmed</strong>');
    expect(warned.summary).not.toContain('Image not published');
    const off = await runBundle(
      inputsFor(registry, published, { 'public-url': `${registry.httpsUrl}/elsewhere`, 'public-check': 'off' }),
    );
    expect(off.code).toBe(0);
    expect(off.outputs).toMatchObject({ fingerprint, 'public-check': 'skipped' });
    expect(off.summary).toContain('not checked (public-check: off)');
    expect(off.stdout).not.toContain('/elsewhere does not serve');
  });
});
