// Self-test of the loopback registry harness: real sshd, nginx, incus-simplestreams and clients.
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { shellJoin, isAlive, runOk } from '../harness/exec.js';
import { makeSplitContainerImage, makeSplitVmImage, simplestreamsSerial, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';

function httpsGet(url: string, ca: string): Promise<{ status: number; rawHeaders: string[]; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            rawHeaders: res.rawHeaders,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

function httpsRequest(
  url: string,
  ca: string,
  method: string,
): Promise<{ status: number; headers: (name: string) => string[] }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { ca, agent: false, method }, (res) => {
      res.resume();
      res.on('end', () => {
        const raw = res.rawHeaders;
        resolve({
          status: res.statusCode ?? 0,
          headers: (name) =>
            raw.flatMap((h, i) => (i % 2 === 0 && h.toLowerCase() === name.toLowerCase() ? [raw[i + 1]!] : [])),
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(method === 'POST' ? '{}' : undefined);
  });
}

describe('loopback registry harness', () => {
  let reg: Registry;
  let work: string;
  let image: TestImage;
  let startMs = 0;

  beforeAll(async () => {
    const t0 = Date.now();
    reg = await startRegistry();
    startMs = Date.now() - t0;
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-harness-test-'));
  });

  afterAll(async () => {
    await reg?.stop();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  it('starts quickly with consistent SSH details', async () => {
    console.log(`startRegistry took ${startMs} ms`);
    expect(startMs).toBeLessThan(5000);
    expect(reg.host).toBe('127.0.0.1');
    expect(reg.httpsUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(reg.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----/);
    expect(reg.knownHostsLine).toMatch(new RegExp(`^\\[127\\.0\\.0\\.1\\]:${reg.sshPort} ssh-ed25519 AAAA\\S+$`));
    const blob = Buffer.from(reg.knownHostsLine.split(' ')[2]!, 'base64');
    const fp = 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
    expect(reg.hostKeyFingerprint).toBe(fp);
    await expect(fsp.stat(reg.uploadDir)).resolves.toBeTruthy();
    await expect(fsp.stat(reg.simplestreamsDir)).resolves.toBeTruthy();

    const who = await reg.ssh('id -un; pwd');
    expect(who.stderr).toBe('');
    expect(who.code).toBe(0);
    expect(who.stdout.split('\n')[0]).toBe(reg.username);
  });

  it('lists no images before anything is published', async () => {
    await expect(reg.incusList()).resolves.toEqual([]);
    await expect(reg.lxcList()).resolves.toEqual([]);
    // incus-simplestreams itself fails on a tree without streams/v1/index.json.
    const r = await reg.simplestreams(['list', '--format', 'json']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/index\.json/);
  });

  it('publishes a split container image over scp + ssh and incus lists it', async () => {
    image = await makeSplitContainerImage(path.join(work, 'ct'));
    const expected = createHash('sha256')
      .update(Buffer.concat([await fsp.readFile(image.metadata), await fsp.readFile(image.rootfs)]))
      .digest('hex');
    expect(image.fingerprint).toBe(expected);

    const remoteMeta = path.join(reg.uploadDir, 'incus.tar.xz');
    const remoteRootfs = path.join(reg.uploadDir, 'rootfs.squashfs');
    for (const [local, remote] of [
      [image.metadata, remoteMeta],
      [image.rootfs, remoteRootfs],
    ] as const) {
      const up = await reg.scp(local, remote);
      expect(up.stderr).toBe('');
      expect(up.code).toBe(0);
    }
    const add = await reg.ssh(
      `cd ${shellJoin([reg.simplestreamsDir])} && TZ=UTC ` +
        shellJoin([
          'incus-simplestreams',
          'add',
          remoteMeta,
          remoteRootfs,
          '--alias',
          'test-alias',
          '--no-default-alias',
        ]),
    );
    expect(add.code).toBe(0);

    const listed = await reg.incusList();
    expect(listed).toHaveLength(1);
    const [img] = listed;
    expect(img!.fingerprint).toBe(image.fingerprint);
    expect(img!.aliases).toContain('test-alias');
    expect(img!.type).toBe('container');
    expect(img!.architecture).toBe('x86_64');
    expect(img!.size).toBeGreaterThan(0);

    const info = await reg.incusImageInfo('test-alias');
    expect(info).toContain(`Fingerprint: ${image.fingerprint}`);

    const verify = await reg.simplestreams(['verify']);
    expect(verify.code).toBe(0);
    const ssList = JSON.parse((await reg.simplestreams(['list', '--format', 'json'])).stdout) as Array<{
      fingerprint: string;
      properties: { serial: string };
    }>;
    expect(ssList.map((i) => i.fingerprint)).toEqual([image.fingerprint]);
    expect(ssList[0]!.properties.serial).toBe(simplestreamsSerial(image.creationDate));
  });

  it('serves streams/v1/images.json over HTTPS with one application/json Content-Type', async () => {
    const ca = await fsp.readFile(reg.caFile, 'utf8');
    const res = await httpsGet(`${reg.httpsUrl}/streams/v1/images.json`, ca);
    expect(res.status).toBe(200);
    const contentTypes: string[] = [];
    for (let i = 0; i < res.rawHeaders.length; i += 2) {
      if (res.rawHeaders[i]!.toLowerCase() === 'content-type') contentTypes.push(res.rawHeaders[i + 1]!);
    }
    expect(contentTypes).toEqual(['application/json']);
    const doc = JSON.parse(res.body) as { products: Record<string, { aliases: string }> };
    expect(doc.products['Crynux:bookworm:default:amd64']?.aliases).toBe('test-alias');
  });

  // The nginx config is the server guide's (docs/nginx/lxc-registry.conf): what it promises holds.
  describe("the guide's nginx config", () => {
    let ca: string;
    let squashfs: string;
    beforeAll(async () => {
      ca = await fsp.readFile(reg.caFile, 'utf8');
      const files = await fsp.readdir(path.join(reg.simplestreamsDir, 'images'));
      squashfs = files.find((f) => f.endsWith('.squashfs'))!;
      expect(squashfs).toBeDefined();
    });

    it('sends one Content-Type and long immutable caching on image files', async () => {
      for (const method of ['GET', 'HEAD']) {
        const res = await httpsRequest(`${reg.httpsUrl}/images/${squashfs}`, ca, method);
        expect(res.status).toBe(200);
        expect(res.headers('content-type')).toEqual(['application/octet-stream']);
        expect(res.headers('cache-control')).toEqual(['public, max-age=31536000, immutable']);
      }
      const meta = (await fsp.readdir(path.join(reg.simplestreamsDir, 'images'))).find((f) => f.endsWith('.tar.xz'))!;
      const res = await httpsRequest(`${reg.httpsUrl}/images/${meta}`, ca, 'HEAD');
      expect(res.headers('content-type')).toEqual(['application/octet-stream']);
    });

    it('sends one application/json Content-Type and short caching on the index', async () => {
      for (const file of ['index.json', 'images.json']) {
        const res = await httpsRequest(`${reg.httpsUrl}/streams/v1/${file}`, ca, 'GET');
        expect(res.status).toBe(200);
        expect(res.headers('content-type')).toEqual(['application/json']);
        expect(res.headers('cache-control')).toEqual(['public, max-age=10, stale-if-error=3600']);
      }
    });

    it('answers only GET and HEAD', async () => {
      for (const url of [`${reg.httpsUrl}/streams/v1/images.json`, `${reg.httpsUrl}/images/${squashfs}`]) {
        for (const method of ['POST', 'PUT', 'DELETE']) {
          expect([method, (await httpsRequest(url, ca, method)).status]).toEqual([method, 405]);
        }
      }
    });

    it("refuses the action's state directory", async () => {
      await fsp.mkdir(path.join(reg.simplestreamsDir, '.lxc-publish'), { recursive: true });
      await fsp.writeFile(path.join(reg.simplestreamsDir, '.lxc-publish', 'lock'), '');
      for (const p of ['/.lxc-publish/lock', '/.lxc-publish/', '/.lxc-publish']) {
        expect([p, (await httpsRequest(`${reg.httpsUrl}${p}`, ca, 'GET')).status]).toEqual([p, 403]);
      }
    });

    it('offers TLS 1.3 (the Incus client requires it) and TLS 1.2', async () => {
      const port = Number(new URL(reg.httpsUrl).port);
      const handshake = (minVersion: tls.SecureVersion, maxVersion: tls.SecureVersion) =>
        new Promise<string | null>((resolve, reject) => {
          const sock = tls.connect({ host: reg.host, port, ca, minVersion, maxVersion }, () => {
            const version = sock.getProtocol();
            sock.end();
            resolve(version);
          });
          sock.on('error', reject);
        });
      await expect(handshake('TLSv1.3', 'TLSv1.3')).resolves.toBe('TLSv1.3');
      await expect(handshake('TLSv1.2', 'TLSv1.2')).resolves.toBe('TLSv1.2');
    });
  });

  it('LXD client lists nothing from an incus-only tree', async () => {
    await expect(reg.lxcList()).resolves.toEqual([]);
  });

  it('LXD client lists the image once versions carry an lxd.tar.xz item', async () => {
    const file = path.join(reg.simplestreamsDir, 'streams', 'v1', 'images.json');
    const original = await fsp.readFile(file, 'utf8');
    type Version = { items: Record<string, Record<string, unknown>> };
    const doc = JSON.parse(original) as {
      products: Record<string, { versions: Record<string, Version> }>;
    };
    for (const product of Object.values(doc.products)) {
      for (const version of Object.values(product.versions)) {
        version.items['lxd.tar.xz'] = { ...version.items['incus.tar.xz'], ftype: 'lxd.tar.xz' };
      }
    }
    await fsp.writeFile(file, JSON.stringify(doc));
    try {
      const listed = await reg.lxcList();
      expect(listed.map((i) => [i.fingerprint, i.type, i.architecture])).toEqual([
        [image.fingerprint, 'container', 'x86_64'],
      ]);
      expect(listed[0]!.aliases).toContain('test-alias');
      expect((await reg.simplestreams(['verify'])).code).toBe(0);
    } finally {
      await fsp.writeFile(file, original);
    }
  });

  it('builds VM images that incus-simplestreams accepts', async () => {
    const vm = await makeSplitVmImage(path.join(work, 'vm'), { os: 'CrynuxVM' });
    const add = await reg.simplestreams(['add', vm.metadata, vm.rootfs, '--no-default-alias', '--alias', 'vm-alias']);
    expect(add.stderr).not.toMatch(/Error/);
    expect(add.code).toBe(0);
    const listed = await reg.incusList();
    const found = listed.find((i) => i.fingerprint === vm.fingerprint);
    expect(found?.type).toBe('virtual-machine');
    expect(found?.aliases).toContain('vm-alias');
    expect(listed).toHaveLength(2);
  });

  it('rejects a client key that is not authorised', async () => {
    const otherKey = path.join(work, 'other_ed25519');
    await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey]);
    const r = await reg.ssh('true', { privateKeyFile: otherKey });
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Permission denied \(publickey\)/);
    // The harness key still works afterwards (no per-source penalty).
    expect((await reg.ssh('true')).code).toBe(0);
  });

  it('stop() ends sshd and nginx and removes the temp dir', async () => {
    const pids = reg.pids();
    expect(pids.length).toBeGreaterThanOrEqual(3); // sshd, nginx master, nginx worker
    await reg.stop();
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    await expect(fsp.stat(reg.root)).rejects.toThrow();
    await reg.stop(); // idempotent
  });
});
