// Self-test of the loopback registry harness: real sshd, nginx, incus-simplestreams and clients.
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import https from 'node:https';
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
