import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openInput } from '../../../src/image/inspect.js';
import type { Compression, DataFile } from '../../../src/image/local-image.js';
import { convertRootfsTarball, findSquashfsTool, squashfsCommand } from '../../../src/image/rootfs.js';

/** The tarball opened as inspection opens it, and converted as the action converts it. */
async function convert(path: string, compression: Compression, creationDate: number) {
  const tarball: DataFile = { ...(await openInput(path, 'rootfs')), kind: 'rootfs-tarball', compression };
  try {
    const { file, remove } = await convertRootfsTarball(tarball, {
      creationDate,
      timeoutSeconds: 600,
      log: () => undefined,
    });
    await file.handle.close();
    return { path: file.path, size: file.size, remove };
  } finally {
    await tarball.handle.close();
  }
}

let dir: string;

/**
 * A rootfs tarball as distrobuilder writes one, made without root: Python's tarfile writes the
 * owners, modes and device nodes into the headers.
 */
function makeTarball(name: string, compression: 'xz' | 'gz'): string {
  const path = join(dir, name);
  const script = `
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:${compression}") as tar:
    def add(name, type=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, **extra):
        info = tarfile.TarInfo(name); info.type = type; info.mode = mode; info.uid = uid; info.gid = gid
        info.mtime = 1700000000; info.size = len(data)
        for key, value in extra.items(): setattr(info, key, value)
        tar.addfile(info, io.BytesIO(data) if data else None)
    add("etc", tarfile.DIRTYPE, mode=0o755)
    add("etc/os-release", data=b"ID=crynux\\n")
    add("usr", tarfile.DIRTYPE, mode=0o755)
    add("usr/bin", tarfile.DIRTYPE, mode=0o755)
    add("usr/bin/sudo", data=b"#!/bin/sh\\n", mode=0o4755)
    add("home", tarfile.DIRTYPE, mode=0o755)
    add("home/crynux", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000)
    add("home/crynux/notes", data=b"hi\\n", mode=0o600, uid=1000, gid=1000)
    add("dev", tarfile.DIRTYPE, mode=0o755)
    add("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
    add("bin", tarfile.SYMTYPE, mode=0o777, linkname="usr/bin")
`;
  execFileSync('python3', ['-c', script, path]);
  return path;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rootfs-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('convertRootfsTarball', () => {
  it('keeps owners, modes, device nodes and links, without root, and gives the same bytes twice', async () => {
    const tarball = makeTarball('rootfs.tar.xz', 'xz');
    const first = await convert(tarball, 'xz', 1764000000);
    const second = await convert(tarball, 'xz', 1764000000);
    const sha = (path: string) => execFileSync('sha256sum', [path]).toString().split(' ')[0];
    expect(sha(first.path)).toBe(sha(second.path));
    expect(readFileSync(first.path).subarray(0, 4).toString()).toBe('hsqs');

    const listing = execFileSync('unsquashfs', ['-lln', first.path]).toString();
    await second.remove();
    expect(existsSync(second.path)).toBe(false);
    expect(listing).toMatch(/^crw-rw-rw- 0\/0 +1, +3 .* squashfs-root\/dev\/null$/m);
    expect(listing).toMatch(/^-rwsr-xr-x 0\/0 .* squashfs-root\/usr\/bin\/sudo$/m);
    expect(listing).toMatch(/^drwx------ 1000\/1000 .* squashfs-root\/home\/crynux$/m);
    expect(listing).toMatch(/^-rw------- 1000\/1000 .* squashfs-root\/home\/crynux\/notes$/m);
    expect(listing).toMatch(/^lrwxrwxrwx 0\/0 .* squashfs-root\/bin -> usr\/bin$/m);
    await first.remove();
  });

  it('reads gzip tarballs too', async () => {
    const converted = await convert(makeTarball('rootfs.tar.gz', 'gz'), 'gzip', 1764000000);
    expect(converted.size).toBeGreaterThan(0);
    await converted.remove();
  });

  it('names the rootfs input when the tarball is damaged', async () => {
    const damaged = join(dir, 'damaged.tar.xz');
    execFileSync('sh', ['-c', 'head -c 100 "$1" > "$2"', 'sh', makeTarball('whole.tar.xz', 'xz'), damaged]);
    // A temp dir of its own (the runner's RUNNER_TEMP), so nobody else's conversions show up in it.
    const runnerTemp = mkdtempSync(join(dir, 'runner-temp-'));
    const saved = process.env['RUNNER_TEMP'];
    process.env['RUNNER_TEMP'] = runnerTemp;
    try {
      await expect(convert(damaged, 'xz', 1764000000)).rejects.toThrow(/^rootfs: converting .* failed/);
      // A failed conversion leaves no directory behind, where a good one leaves its own.
      expect(readdirSync(runnerTemp)).toEqual([]);
      const good = await convert(makeTarball('good.tar.xz', 'xz'), 'xz', 1764000000);
      expect(readdirSync(runnerTemp)).toEqual([expect.stringMatching(/^lxc-publish-rootfs-/)]);
      await good.remove();
    } finally {
      if (saved === undefined) delete process.env['RUNNER_TEMP'];
      else process.env['RUNNER_TEMP'] = saved;
    }
  });
});

describe('squashfsCommand', () => {
  it('reads a tar from stdin with either tool', async () => {
    expect((await findSquashfsTool()).name).toMatch(/^(tar2sqfs|mksquashfs)$/);
    expect(squashfsCommand({ name: 'tar2sqfs', path: '/usr/bin/tar2sqfs' }, '/o')).toEqual([
      '/usr/bin/tar2sqfs',
      '--quiet',
      '--force',
      '--no-skip',
      '--compressor',
      'xz',
      '/o',
    ]);
    expect(squashfsCommand({ name: 'mksquashfs', path: 'mksquashfs' }, '/o')).toEqual([
      'mksquashfs',
      '-',
      '/o',
      '-tar',
      '-noappend',
      '-quiet',
      '-comp',
      'xz',
    ]);
  });
});
