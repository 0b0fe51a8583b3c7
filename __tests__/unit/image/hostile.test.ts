// Hostile image files: every one gets a quick, clear refusal, and what was inspected is what is
// hashed and uploaded. Files are made with tar, python3's tarfile and qemu-img; nothing is mocked.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fingerprintOf, hashFileInto } from '../../../src/image/hashing.js';
import { inspectImage, openInput } from '../../../src/image/inspect.js';
import { checkUnchanged, closeFiles, readStream } from '../../../src/image/local-file.js';
import { imageFiles, type DataFile, type LocalImage } from '../../../src/image/local-image.js';
import { parseMetadataYaml } from '../../../src/image/metadata.js';
import { qcow2Reference } from '../../../src/image/qcow2.js';
import { convertRootfsTarball } from '../../../src/image/rootfs.js';

let dir: string;
const path = (name: string): string => join(dir, name);
const opened: LocalImage[] = [];

const METADATA = `architecture: x86_64
creation_date: 1764000000
properties:
  architecture: amd64
  description: Crynux bookworm amd64
  os: Crynux
  release: bookworm
  variant: default
templates: {}
`;

/**
 * A tarball written by python3's tarfile from a list of entries: [name, {data, type, linkname,
 * size}], GNU format, compressed as `mode` says ("w:xz", "w:gz", "w").
 */
function pyTar(name: string, mode: string, body: string): string {
  const script = `
import io, sys, tarfile
tar = tarfile.open(sys.argv[1], "${mode}", format=tarfile.GNU_FORMAT)
def add(name, data=b"", type=tarfile.REGTYPE, linkname="", mode=0o644):
    info = tarfile.TarInfo(name); info.type = type; info.size = len(data); info.mtime = 1700000000
    info.linkname = linkname; info.mode = mode
    tar.addfile(info, io.BytesIO(data) if data else None)
meta = sys.argv[2].encode()
${body}
tar.close()
`;
  execFileSync('python3', ['-c', script, path(name), METADATA]);
  return path(name);
}

function sh(script: string): string {
  return execFileSync('sh', ['-c', script, 'sh', dir]).toString();
}

async function inspect(metadata: string, rootfs: string, limits?: { maxEntries: number; maxBytes: number }) {
  const image = await inspectImage(metadata, rootfs, limits);
  opened.push(image);
  return image;
}

/** How long a call takes to settle, and how. */
/**
 * How long `call` took by the clock, and in processor time of this process: a limit on work done
 * here is checked against the latter, which another job on the machine does not stretch.
 */
async function timed(call: () => Promise<unknown>): Promise<{ seconds: number; cpuSeconds: number; error: string }> {
  const started = Date.now();
  const cpu = process.cpuUsage();
  let error = '';
  try {
    await call();
  } catch (caught) {
    error = (caught as Error).message;
  }
  const used = process.cpuUsage(cpu);
  return { seconds: (Date.now() - started) / 1000, cpuSeconds: (used.user + used.system) / 1e6, error };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hostile-'));
  mkdirSync(path('tree'));
  writeFileSync(path('tree/os-release'), 'ID=crynux\n');
  execFileSync('mksquashfs', [path('tree'), path('rootfs.squashfs'), '-noappend', '-quiet']);
  pyTar('incus.tar.xz', 'w:xz', 'add("metadata.yaml", meta)');
});
afterAll(async () => {
  for (const image of opened) await closeFiles(imageFiles(image));
  rmSync(dir, { recursive: true, force: true });
});

describe('1. metadata is read as a stream, capped, and never hangs', () => {
  it('refuses a metadata.yaml of one 64 MB line in a small .tar.zst within seconds, naming the 1 MiB limit', async () => {
    sh(
      'mkdir -p "$1/long" && cd "$1/long" && { printf "description: "; head -c 67108864 /dev/zero | tr "\\0" a; echo; } > metadata.yaml && ' +
        'tar --zstd -cf "$1/long.tar.zst" metadata.yaml && rm -rf "$1/long"',
    );
    const result = await timed(() => inspect(path('long.tar.zst'), path('rootfs.squashfs')));
    expect(result.error).toMatch(
      /^metadata: metadata\.yaml in ".*long\.tar\.zst" is 67108878 bytes; the limit is 1 MiB/,
    );
    expect(result.seconds).toBeLessThan(10);
  });

  it('takes the first member named exactly metadata.yaml, as incus-simplestreams does', async () => {
    const tarball = pyTar(
      'twice.tar.xz',
      'w:xz',
      'add("metadata.yaml", meta)\nadd("metadata.yaml", meta.replace(b"variant: default", b"variant: second"))',
    );
    expect((await inspect(tarball, path('rootfs.squashfs'))).properties.variant).toBe('default');
  });

  it('refuses ./metadata.yaml and a nested one, saying the server reads only "metadata.yaml"', async () => {
    const dotted = pyTar('dotted.tar.xz', 'w:xz', 'add("./metadata.yaml", meta)');
    await expect(inspect(dotted, path('rootfs.squashfs'))).rejects.toThrow(
      /holds "\.\/metadata\.yaml" but no member named exactly metadata\.yaml, which is the one incus-simplestreams reads/,
    );
    const nested = pyTar('nested.tar.xz', 'w:xz', 'add("build/metadata.yaml", meta)');
    await expect(inspect(nested, path('rootfs.squashfs'))).rejects.toThrow(
      /holds "build\/metadata\.yaml" but no member/,
    );
  });

  it('refuses a metadata.yaml that is a link or a directory', async () => {
    const link = pyTar('link.tar.xz', 'w:xz', 'add("metadata.yaml", type=tarfile.SYMTYPE, linkname="/etc/passwd")');
    await expect(inspect(link, path('rootfs.squashfs'))).rejects.toThrow(
      /metadata\.yaml in ".*link\.tar\.xz" is a symbolic link, not a file/,
    );
    const directory = pyTar('dir.tar.xz', 'w:xz', 'add("metadata.yaml", type=tarfile.DIRTYPE)');
    await expect(inspect(directory, path('rootfs.squashfs'))).rejects.toThrow(
      /holds "metadata\.yaml\/" but no member named exactly metadata\.yaml/,
    );
  });

  it('refuses, within seconds, a unified tarball of 150k long names and no rootfs (it ended in an uncaught RangeError)', async () => {
    const tarball = pyTar(
      'names.tar.gz',
      'w:gz',
      'add("metadata.yaml", meta)\nfor i in range(150000): add("x" * 3890 + "%07d" % i)',
    );
    const result = await timed(() => inspect(tarball, ''));
    expect(result.error).toMatch(
      /^metadata: ".*names\.tar\.gz" (expands more than|holds metadata\.yaml but neither rootfs)/,
    );
    expect(result.cpuSeconds).toBeLessThan(10);
  }, 120_000);

  it('refuses a unified tarball without rootfs/ or rootfs.img, and stops at the first rootfs entry', async () => {
    const bare = pyTar('bare.tar.xz', 'w:xz', 'add("metadata.yaml", meta)\nadd("templates/hostname.tpl", b"x")');
    await expect(inspect(bare, '')).rejects.toThrow(/holds metadata\.yaml but neither rootfs\/ nor rootfs\.img/);
    // Whatever follows the first rootfs entry is not read: not even a damaged end.
    const unified = pyTar(
      'unified.tar',
      'w',
      'add("metadata.yaml", meta)\nadd("rootfs", type=tarfile.DIRTYPE)\nadd("rootfs/etc/os-release", b"ID=crynux\\n")',
    );
    appendFileSync(unified, Buffer.alloc(512, 0x41));
    expect((await inspect(unified, '')).imageType).toBe('container');
  });

  it('ends the step with one ::error line when an error escapes every caller (the last resort)', () => {
    const script = `
      import { installLastResortHandlers } from './src/action/step.ts';
      installLastResortHandlers();
      setTimeout(() => { throw new RangeError('Invalid string length'); }, 1);
    `;
    let stdout = '';
    let status = 0;
    try {
      execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        env: { PATH: process.env['PATH'], HOME: process.env['HOME'] },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (error) {
      stdout = String((error as { stdout: Buffer }).stdout);
      status = (error as { status: number }).status;
    }
    expect(status).toBe(1);
    expect(stdout.split('\n').filter((line) => line.startsWith('::error'))).toEqual([
      '::error title=lxc-publish failed::Unexpected error: Invalid string length',
    ]);
  });
});

describe('1. the last resort also covers a run that ends without settling', () => {
  it('prints one ::error line and fails when the event loop empties before the run finished', () => {
    const script = `
      import { installLastResortHandlers } from './src/action/step.ts';
      installLastResortHandlers();
      await new Promise(() => undefined);
    `;
    let stdout = '';
    let status = 0;
    try {
      execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        env: { PATH: process.env['PATH'], HOME: process.env['HOME'] },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (error) {
      stdout = String((error as { stdout: Buffer }).stdout);
      status = (error as { status: number }).status;
    }
    expect(status).not.toBe(0);
    expect(stdout.split('\n').filter((line) => line.startsWith('::error'))).toEqual([
      '::error title=lxc-publish failed::Unexpected error: the run ended before it finished (nothing was left to wait for).',
    ]);
  });
});

describe('2. a VM disk must not refer to files outside itself', () => {
  it('refuses a qcow2 with a backing file and one with an external data file, and takes a standalone one', async () => {
    sh('qemu-img create -q -f qcow2 -b /etc/shadow -F raw "$1/backing.qcow2"');
    sh('qemu-img create -q -f qcow2 -o data_file=/etc/hostname,data_file_raw=on "$1/data-file.qcow2" 1M');
    sh('qemu-img create -q -f qcow2 "$1/standalone.qcow2" 16M');
    await expect(inspect(path('incus.tar.xz'), path('backing.qcow2'))).rejects.toThrow(
      /^rootfs: ".*backing\.qcow2" is a qcow2 disk with a backing file "\/etc\/shadow": it refers to a file outside itself/,
    );
    await expect(inspect(path('incus.tar.xz'), path('data-file.qcow2'))).rejects.toThrow(
      /^rootfs: ".*data-file\.qcow2" is a qcow2 disk with an external data file/,
    );
    expect((await inspect(path('incus.tar.xz'), path('standalone.qcow2'))).imageType).toBe('virtual-machine');
  });

  it('reads the header extension of an external data file even without the feature bit', () => {
    const head = readFileSync(path('data-file.qcow2')).subarray(0, 65536);
    const withoutBit = Buffer.from(head);
    withoutBit.writeBigUInt64BE(0n, 72);
    expect(qcow2Reference(withoutBit)).toBe('an external data file "/etc/hostname"');
    const unknownFeature = Buffer.from(readFileSync(path('standalone.qcow2')).subarray(0, 65536));
    unknownFeature.writeBigUInt64BE(1n << 40n, 72);
    expect(qcow2Reference(unknownFeature)).toMatch(/incompatible features this check does not know/);
  });

  it('refuses rootfs.img with a backing file inside a unified tarball', async () => {
    sh('mkdir -p "$1/u" && cp "$1/backing.qcow2" "$1/u/rootfs.img" && printf "%s" "$2" > "$1/u/metadata.yaml"');
    writeFileSync(path('u/metadata.yaml'), METADATA);
    sh('tar -C "$1/u" -cJf "$1/unified-vm.tar.xz" metadata.yaml rootfs.img');
    await expect(inspect(path('unified-vm.tar.xz'), '')).rejects.toThrow(
      /^metadata: rootfs\.img in ".*unified-vm\.tar\.xz" is a qcow2 disk with a backing file "\/etc\/shadow"/,
    );
  });
});

describe('3. a rootfs tarball is read header first, within limits, and converted under a time limit', () => {
  it('refuses a tiny tarball holding a 64 GiB sparse file (GNU and pax sparse) by default, in well under a second', async () => {
    sh('mkdir -p "$1/s" && truncate -s 64G "$1/s/big" && tar -C "$1/s" --sparse -cJf "$1/sparse.tar.xz" big');
    sh('tar -C "$1/s" --sparse --format=posix -cJf "$1/sparse-pax.tar.xz" big && rm -rf "$1/s"');
    for (const name of ['sparse.tar.xz', 'sparse-pax.tar.xz']) {
      const result = await timed(() => inspect(path('incus.tar.xz'), path(name)));
      expect(result.error).toMatch(
        /^rootfs: ".*" holds more than 16384 MiB of file content \(max-rootfs-size; "big" alone declares 68719476736 bytes\)/,
      );
      expect(result.cpuSeconds).toBeLessThan(5);
    }
  });

  it('refuses more entries than max-rootfs-entries', async () => {
    const many = pyTar('many.tar.xz', 'w:xz', 'for i in range(2000): add("f%05d" % i)');
    await expect(inspect(path('incus.tar.xz'), many, { maxEntries: 1000, maxBytes: 1 << 30 })).rejects.toThrow(
      /^rootfs: ".*many\.tar\.xz" holds more than 1000 entries \(max-rootfs-entries\)/,
    );
    const image = await inspect(path('incus.tar.xz'), many, { maxEntries: 2000, maxBytes: 1 << 30 });
    expect(image.data?.tar).toMatchObject({ entries: 2000, bytes: 0 });
  });

  it('refuses a hard link to ../../../etc/passwd and a .. path, naming the entry', async () => {
    const link = pyTar(
      'hardlink.tar.xz',
      'w:xz',
      'add("passwd", type=tarfile.LNKTYPE, linkname="../../../etc/passwd")',
    );
    await expect(inspect(path('incus.tar.xz'), link)).rejects.toThrow(
      /^rootfs: ".*hardlink\.tar\.xz" holds the entry "passwd", a hard link to "\.\.\/\.\.\/\.\.\/etc\/passwd", which leads outside/,
    );
    const dots = pyTar('dots.tar.xz', 'w:xz', 'add("etc/../../x", b"x")');
    await expect(inspect(path('incus.tar.xz'), dots)).rejects.toThrow(/holds the entry "etc\/\.\.\/\.\.\/x"/);
  });

  it('stops the conversion at its time limit, and logs progress while it runs', async () => {
    const tarball = pyTar('slow.tar.xz', 'w:xz', 'for i in range(3000): add("d%05d/f" % i, b"x" * 100)');
    const image = await inspect(path('incus.tar.xz'), tarball);
    const data = image.data as DataFile;
    await expect(
      convertRootfsTarball(data, { creationDate: 1764000000, timeoutSeconds: 0.001, log: () => undefined }),
    ).rejects.toThrow(/took longer than 0\.001 s \(convert-rootfs-timeout\) and was stopped/);
    const lines: string[] = [];
    const converted = await convertRootfsTarball(data, {
      creationDate: 1764000000,
      timeoutSeconds: 600,
      log: (line) => lines.push(line),
      progressEvery: 1,
    });
    await converted.remove();
    expect(lines.length).toBeGreaterThan(0);
    expect(lines[0]).toMatch(/^Converting: \d+% of \d+ MiB of tar read, \d+ s$/);
  });
  it('converts a tarball (xz or gzip) with 32 MiB of other bytes after its end marker, which neither the converter nor the inspection reads', async () => {
    sh('mkdir -p "$1/trailing/rootfs" && echo hi > "$1/trailing/rootfs/f"');
    writeFileSync(path('trailing/metadata.yaml'), METADATA);
    for (const [name, compress] of [
      ['trailing.tar.xz', 'xz -0 -T1'],
      ['trailing.tar.gz', 'gzip -1'],
    ]) {
      sh(
        `(tar -C "$1/trailing" -cf - metadata.yaml rootfs; head -c 33554432 /dev/urandom) | ${compress} > "$1/${name}"`,
      );
      const image = await inspect(path('incus.tar.xz'), path(name!));
      const converted = await convertRootfsTarball(image.data as DataFile, {
        creationDate: 1764000000,
        timeoutSeconds: 60,
        log: () => undefined,
      });
      const listing = sh(`unsquashfs -lc "${converted.file.path}"`);
      await converted.remove();
      expect(listing).toContain('squashfs-root/rootfs/f');
    }
  });

  it('fails at once, naming the converter and the room left, when the converter gives up first (a full disk)', async () => {
    sh('mkdir -p "$1/full/rootfs" && head -c 33554432 /dev/urandom > "$1/full/rootfs/payload"');
    writeFileSync(path('full/metadata.yaml'), METADATA);
    sh('tar -C "$1/full" -cf - metadata.yaml rootfs | gzip -1 > "$1/full.tar.gz"');
    const image = await inspect(path('incus.tar.xz'), path('full.tar.gz'));
    // The runner's temp dir on a 1 MiB file system: the converter fails after its first blocks,
    // or (the disk full already) before it read anything, the decompressor waiting on its input.
    sh('mkdir -p "$1/small-disk" && mount -t tmpfs -o size=1m tmpfs "$1/small-disk"');
    const saved = process.env['RUNNER_TEMP'];
    process.env['RUNNER_TEMP'] = path('small-disk');
    try {
      for (const filler of [0, 1 << 20]) {
        sh(`rm -f "$1/small-disk/filler"; head -c ${filler} /dev/zero > "$1/small-disk/filler" || true`);
        const result = await timed(() =>
          convertRootfsTarball(image.data as DataFile, {
            creationDate: 1764000000,
            timeoutSeconds: 120,
            log: () => undefined,
          }),
        );
        expect(result.error).toMatch(
          /^rootfs: converting .* failed: \S*(tar2sqfs|sqfstar|mksquashfs) exited with status \d+/,
        );
        expect(result.error).toMatch(/small-disk \(RUNNER_TEMP\) has room for the squashfs \(\d+ MiB free now\)\.$/);
        expect(result.seconds).toBeLessThan(30);
        expect(readdirSync(path('small-disk'))).toEqual(['filler']);
      }
    } finally {
      if (saved === undefined) delete process.env['RUNNER_TEMP'];
      else process.env['RUNNER_TEMP'] = saved;
      sh('umount "$1/small-disk"');
    }
  });

  it('fails at once when the converter ends without reading a byte (a broken install), the decompressor still waiting for input', async () => {
    sh(
      'mkdir -p "$1/broken-bin" && printf "#!/bin/sh\\necho \\"tar2sqfs: cannot start\\" >&2\\nexit 1\\n" > "$1/broken-bin/tar2sqfs" && chmod +x "$1/broken-bin/tar2sqfs"',
    );
    sh('mkdir -p "$1/unread/rootfs" && head -c 33554432 /dev/urandom > "$1/unread/rootfs/payload"');
    writeFileSync(path('unread/metadata.yaml'), METADATA);
    sh('tar -C "$1/unread" -cf - metadata.yaml rootfs | xz -0 -T1 > "$1/unread.tar.xz"');
    const image = await inspect(path('incus.tar.xz'), path('unread.tar.xz'));
    const saved = process.env['PATH'];
    process.env['PATH'] = `${path('broken-bin')}:${saved ?? ''}`;
    try {
      const result = await timed(() =>
        convertRootfsTarball(image.data as DataFile, {
          creationDate: 1764000000,
          timeoutSeconds: 120,
          log: () => undefined,
        }),
      );
      expect(result.error).toMatch(/failed: \S*tar2sqfs exited with status 1: tar2sqfs: cannot start\. Check/);
      expect(result.seconds).toBeLessThan(30);
    } finally {
      process.env['PATH'] = saved;
    }
  });

  it('stops at its time limit while the converter is behind the decompressor (no hang on a stream held back)', async () => {
    // 48 MiB of random bytes: xz hands them out far faster than the converter compresses them, so
    // when the limit strikes, the decompressor's output is waiting on the converter.
    sh('mkdir -p "$1/behind/rootfs" && head -c 50331648 /dev/urandom > "$1/behind/rootfs/payload"');
    writeFileSync(path('behind/metadata.yaml'), METADATA);
    sh('tar -C "$1/behind" -cf - metadata.yaml rootfs | xz -0 -T1 > "$1/behind.tar.xz"');
    const image = await inspect(path('incus.tar.xz'), path('behind.tar.xz'));
    const data = image.data as DataFile;
    for (const seconds of [0.3, 0.6, 1]) {
      const result = await timed(() =>
        convertRootfsTarball(data, { creationDate: 1764000000, timeoutSeconds: seconds, log: () => undefined }),
      );
      expect(result.error).toMatch(/\(convert-rootfs-timeout\) and was stopped/);
      expect(result.seconds).toBeLessThan(seconds + 10);
    }
  });
});

describe('4. each file is opened once: what was inspected is what is hashed and uploaded', () => {
  it('hashes the squashfs that was inspected after its symlink is swapped to a same-size qcow2', async () => {
    const squashfs = readFileSync(path('rootfs.squashfs'));
    sh(`qemu-img create -q -f qcow2 "$1/swap.qcow2" 16M && truncate -s ${squashfs.length} "$1/swap.qcow2"`);
    symlinkSync(path('rootfs.squashfs'), path('rootfs-link'));
    const image = await inspect(path('incus.tar.xz'), path('rootfs-link'));
    expect(image.data?.kind).toBe('squashfs');
    symlinkSync(path('swap.qcow2'), path('rootfs-link.new'));
    renameSync(path('rootfs-link.new'), path('rootfs-link'));
    const expected = createHash('sha256')
      .update(readFileSync(path('incus.tar.xz')))
      .update(squashfs)
      .digest('hex');
    expect(await fingerprintOf(image)).toBe(expected);
    for (const file of imageFiles(image)) await checkUnchanged(file);
  });

  it('keeps the descriptor open when a reader stops early (a unified tarball read up to its rootfs)', async () => {
    sh('mkdir -p "$1/big/rootfs" && head -c 2097152 /dev/urandom > "$1/big/rootfs/payload"');
    writeFileSync(path('big/metadata.yaml'), METADATA);
    sh('tar -C "$1/big" -cf "$1/big.tar" metadata.yaml rootfs');
    const image = await inspect(path('big.tar'), '');
    expect(image.imageType).toBe('container');
    const expected = createHash('sha256')
      .update(readFileSync(path('big.tar')))
      .digest('hex');
    expect(await fingerprintOf(image)).toBe(expected);
  });

  it('reads up to the size at inspection, and says "the file changed" when it grew or shrank', async () => {
    writeFileSync(path('growing.squashfs'), readFileSync(path('rootfs.squashfs')));
    const image = await inspect(path('incus.tar.xz'), path('growing.squashfs'));
    const data = image.data as DataFile;
    appendFileSync(path('growing.squashfs'), Buffer.alloc(4096, 1));
    const chunks: Buffer[] = [];
    for await (const chunk of readStream(data)) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).length).toBe(data.size);
    await expect(checkUnchanged(data)).rejects.toThrow(
      /^rootfs: the file changed while it was being published \(".*growing\.squashfs": \d+ bytes when inspected, \d+ now\)/,
    );
    execFileSync('truncate', ['-s', '100', path('growing.squashfs')]);
    await expect(hashFileInto(data, [createHash('sha256')])).rejects.toThrow(
      /^rootfs: the file changed while it was being published \(.*it ended after 100\)/,
    );
  });

  it('refuses a FIFO, /dev/zero, /proc/self/environ and a /sys file without hanging', async () => {
    execFileSync('mkfifo', [path('fifo')]);
    await expect(inspect(path('incus.tar.xz'), path('fifo'))).rejects.toThrow(
      /^rootfs: ".*fifo" is not a regular file/,
    );
    await expect(inspect('/dev/zero', path('rootfs.squashfs'))).rejects.toThrow(
      /^metadata: "\/dev\/zero" is not a regular file/,
    );
    await expect(inspect('/proc/self/environ', path('rootfs.squashfs'))).rejects.toThrow(/is empty/);
    await expect(inspect(path('incus.tar.xz'), '/sys/kernel/mm/transparent_hugepage/enabled')).rejects.toThrow(
      /^rootfs: .* (is an unknown kind of file|does not exist)/,
    );
    const file = await openInput(path('rootfs.squashfs'), 'rootfs');
    await closeFiles([file]);
  });
});

describe('5. metadata.yaml is read as the server reads it', () => {
  const withDate = (date: string): string => METADATA.replace('creation_date: 1764000000', `creation_date: ${date}`);
  const now = Date.UTC(2026, 0, 15);

  it.each([
    ['01700100000', /not a plain decimal Unix time/],
    ['1e20', /not a plain decimal Unix time/],
    ['0x6553f100', /not a plain decimal Unix time/],
    ['+1700100000', /not a plain decimal Unix time/],
    ['!!int 1700100000', /not a plain decimal Unix time/],
    ['"1700100000"', /no valid creation_date/],
    ['0', /not a plain decimal Unix time/],
    ['-1700100000', /not a plain decimal Unix time/],
    ['4102444800', /4102444800 \(2100-01-01T00:00:00\.000Z\), which is not between 2000-01-01 and a day from now/],
    ['900000000', /which is not between 2000-01-01/],
  ])('refuses creation_date: %s', (date, message) => {
    expect(() => parseMetadataYaml(withDate(date), 'incus.tar.xz', now)).toThrow(message);
  });

  it('takes a plain date up to a day ahead', () => {
    expect(parseMetadataYaml(withDate('1768521600'), 'x', now).creationDate).toBe(1768521600);
  });

  it('refuses architecture fields that name different architectures, and maps distro names as Incus does', () => {
    const arch = (incus: string, distro: string) =>
      METADATA.replace('architecture: x86_64', `architecture: ${incus}`).replace(
        '  architecture: amd64',
        `  architecture: ${distro}`,
      );
    expect(() => parseMetadataYaml(arch('aarch64', 'amd64'), 'x', now)).toThrow(
      /has architecture "aarch64" \(aarch64\) but properties\.architecture "amd64" \(x86_64\)/,
    );
    expect(() => parseMetadataYaml(arch('x86_64', 'foo'), 'x', now)).toThrow(/not an architecture Incus knows/);
    for (const [incus, distro] of [
      ['x86_64', 'amd64'],
      ['aarch64', 'arm64'],
      ['armv7l', 'armhf'],
      ['armv6l', 'armel'],
      ['ppc64le', 'ppc64el'],
      ['i686', 'i386'],
      ['loongarch64', 'loong64'],
      ['riscv64', 'riscv64'],
      ['s390x', 's390x'],
    ]) {
      expect(parseMetadataYaml(arch(incus as string, distro as string), 'x', now).architecture).toBe(incus);
    }
  });

  it.each([
    ['os', 'Crynux:evil', '":"'],
    ['release', 'book,worm', '","'],
    ['variant', 'a/b', '"/"'],
    ['release', '"book worm"', 'a blank'],
    ['variant', '"de\\tfault"', 'a control or blank character \\(U\\+0009\\)'],
    ['os', '"Cry\\u001bnux"', 'a control or blank character \\(U\\+001B\\)'],
  ])('refuses properties.%s %s, naming the field and why', (field, value, what) => {
    const yaml = METADATA.replace(new RegExp(`^  ${field}: .*$`, 'm'), `  ${field}: ${value}`);
    expect(() => parseMetadataYaml(yaml, 'x', now)).toThrow(
      new RegExp(
        `has properties\\.${field} ".*", which contains ${what}\\. os, release, variant and properties\\.architecture form the product key`,
      ),
    );
  });

  it('still refuses alias bombs and duplicate keys', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]', 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]'];
    for (let i = 0; i < 6; i++)
      bomb.push(`c${i}: &c${i} [${`*${i === 0 ? 'b' : `c${i - 1}`}, `.repeat(9).slice(0, -2)}]`);
    expect(() => parseMetadataYaml(`${METADATA}${bomb.join('\n')}\n`, 'x', now)).toThrow(/not valid YAML/);
    expect(() => parseMetadataYaml(`${METADATA}creation_date: 1764000001\n`, 'x', now)).toThrow(/not valid YAML/);
  });
});

describe('6. tools that read image files get a minimal environment', () => {
  it('runs the decompressor and the converter with PATH, LC_ALL=C and SOURCE_DATE_EPOCH only', async () => {
    const bin = path('spy-bin');
    mkdirSync(bin);
    for (const tool of ['xz', 'tar2sqfs']) {
      writeFileSync(
        join(bin, tool),
        `#!/bin/sh\n/usr/bin/env > "${path(`env-${tool}`)}"\nexec /usr/bin/${tool} "$@"\n`,
      );
      chmodSync(join(bin, tool), 0o755);
    }
    const tarball = pyTar('env.tar.xz', 'w:xz', 'add("etc/hostname", b"x\\n")');
    const savedPath = process.env['PATH'];
    process.env['PATH'] = `${bin}:${savedPath}`;
    process.env['INPUT_SSH-KEY'] = '-----BEGIN OPENSSH PRIVATE KEY----- secret';
    process.env['LXC_PUBLISH_TEST_SECRET'] = 'secret';
    try {
      const image = await inspect(path('incus.tar.xz'), tarball);
      const converted = await convertRootfsTarball(image.data as DataFile, {
        creationDate: 1764000000,
        timeoutSeconds: 600,
        log: () => undefined,
      });
      await converted.remove();
    } finally {
      process.env['PATH'] = savedPath;
      delete process.env['INPUT_SSH-KEY'];
      delete process.env['LXC_PUBLISH_TEST_SECRET'];
    }
    const names = (tool: string): string[] =>
      readFileSync(path(`env-${tool}`), 'utf8')
        .trim()
        .split('\n')
        .map((line) => line.split('=')[0] as string)
        .filter((name) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(name)) // set by the spy's own shell
        .sort();
    expect(names('xz')).toEqual(['LC_ALL', 'PATH']);
    expect(names('tar2sqfs')).toEqual(['LC_ALL', 'PATH', 'SOURCE_DATE_EPOCH']);
    expect(readFileSync(path('env-tar2sqfs'), 'utf8')).toMatch(/^SOURCE_DATE_EPOCH=1764000000$/m);
  });
});
