import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { fingerprintOf, hashFileInto } from '../../../src/image/hashing.js';
import type { LocalImage } from '../../../src/image/local-image.js';
import { detectContent, inspectImage, openInput } from '../../../src/image/inspect.js';
import { parseMetadataYaml } from '../../../src/image/metadata.js';

let dir: string;
const path = (name: string): string => join(dir, name);

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

/** A tarball of the given files, compressed as tar's flag says (-J xz, -z gzip, none). */
function tarball(name: string, files: Record<string, string>, flag: string[] = ['-J'], dirs: string[] = []): string {
  const src = path(`${name}.src`);
  mkdirSync(src, { recursive: true });
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(join(src, file, '..'), { recursive: true });
    writeFileSync(join(src, file), content);
  }
  for (const extra of dirs) mkdirSync(join(src, extra), { recursive: true });
  execFileSync('tar', [
    '-C',
    src,
    ...flag,
    '-cf',
    path(name),
    ...Object.keys(files).map((f) => f.split('/')[0] as string),
    ...dirs,
  ]);
  return path(name);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'image-'));
  tarball('incus.tar.xz', { 'metadata.yaml': METADATA, 'templates/hostname.tpl': '{{ container.name }}\n' });
  tarball('incus.tar.gz', { 'metadata.yaml': METADATA }, ['-z']);
  tarball('plain.tar', { 'metadata.yaml': METADATA }, []);
  tarball('meta.tar.xz', { config: 'lxc.arch = x86_64\n', 'templates/hosts': '' }); // build-lxc output
  tarball('rootfs.tar.xz', { 'etc/os-release': 'ID=debian\n' });
  tarball('unified.tar.xz', { 'metadata.yaml': METADATA, 'rootfs/etc/os-release': 'ID=debian\n' });
  tarball('unified-vm.tar.gz', { 'metadata.yaml': METADATA, 'rootfs.img': 'disk' }, ['-z']);
  mkdirSync(path('rootfs'));
  writeFileSync(path('rootfs/os-release'), 'ID=debian\n');
  execFileSync('mksquashfs', [path('rootfs'), path('rootfs.squashfs'), '-noappend', '-quiet']);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path('disk.qcow2'), '16M']);
  writeFileSync(path('empty'), '');
  writeFileSync(path('random.bin'), 'not an image at all');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('detectContent', () => {
  it('knows the formats by their magic bytes, not their names', () => {
    expect(detectContent(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1]))).toBe('xz');
    expect(detectContent(Buffer.from([0x1f, 0x8b, 8]))).toBe('gzip');
    expect(detectContent(Buffer.from('BZh91AY'))).toBe('bzip2');
    expect(detectContent(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(detectContent(Buffer.from('hsqs....'))).toBe('squashfs');
    expect(detectContent(Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]))).toBe('qcow2');
    const tar = Buffer.alloc(512);
    tar.write('ustar', 257);
    expect(detectContent(tar)).toBe('none');
    expect(detectContent(Buffer.from('hello'))).toBeUndefined();
  });
});

describe('parseMetadataYaml', () => {
  it('reads what incus-simplestreams add needs', () => {
    expect(parseMetadataYaml(METADATA, 'incus.tar.xz')).toEqual({
      architecture: 'x86_64',
      creationDate: 1764000000,
      os: 'Crynux',
      release: 'bookworm',
      variant: 'default',
      propertiesArchitecture: 'amd64',
      description: 'Crynux bookworm amd64',
    });
  });

  it.each([
    ['architecture', /no architecture/],
    ['creation_date', /no valid creation_date/],
    ['  os', /no properties\.os/],
    ['  release', /no properties\.release/],
    ['  variant', /no properties\.variant/],
    ['  architecture', /no properties\.architecture/],
    ['  description', /no properties\.description/],
  ])('names a missing %s', (field, message) => {
    const without = METADATA.split('\n')
      .filter((line) => !line.startsWith(`${field}:`))
      .join('\n');
    expect(() => parseMetadataYaml(without, 'incus.tar.xz')).toThrow(message);
  });

  it('refuses YAML that is not a mapping or not YAML at all', () => {
    expect(() => parseMetadataYaml('- a\n- b\n', 'x')).toThrow(/no valid creation_date|mapping/);
    expect(() => parseMetadataYaml('just text', 'x')).toThrow(/not a YAML mapping/);
    expect(() => parseMetadataYaml('a: [b\n', 'x')).toThrow(/not valid YAML/);
    expect(() => parseMetadataYaml(METADATA.replace('creation_date: 1764000000', 'creation_date: soon'), 'x')).toThrow(
      /creation_date/,
    );
    expect(() => parseMetadataYaml(METADATA.replace(/properties:[\s\S]*/, 'properties: 3\n'), 'x')).toThrow(
      /no properties section/,
    );
  });
});

describe('inspectImage', () => {
  it('inspects a split container image', async () => {
    const image = await inspectImage(path('incus.tar.xz'), path('rootfs.squashfs'));
    expect(image.imageType).toBe('container');
    expect(image.metadata.compression).toBe('xz');
    expect(image.data?.kind).toBe('squashfs');
    expect(image.size).toBe(image.metadata.size + (image.data?.size ?? 0));
    expect(image.properties.os).toBe('Crynux');
  });

  it('inspects a split VM image and other metadata compressions', async () => {
    expect((await inspectImage(path('incus.tar.gz'), path('disk.qcow2'))).imageType).toBe('virtual-machine');
    expect((await inspectImage(path('plain.tar'), path('rootfs.squashfs'))).metadata.compression).toBe('none');
  });

  it('inspects unified tarballs, container and VM', async () => {
    const container = await inspectImage(path('unified.tar.xz'), '');
    expect(container.imageType).toBe('container');
    expect(container.data).toBeUndefined();
    expect((await inspectImage(path('unified-vm.tar.gz'), '')).imageType).toBe('virtual-machine');
  });

  it('refuses LXC-format metadata, naming build-incus', async () => {
    await expect(inspectImage(path('meta.tar.xz'), path('rootfs.squashfs'))).rejects.toThrow(
      /metadata: .*meta\.tar\.xz" holds no metadata\.yaml.*build-incus/,
    );
  });

  it('detects the data file kind from its content, and refuses other kinds', async () => {
    const tarball = await inspectImage(path('incus.tar.xz'), path('rootfs.tar.xz'));
    expect(tarball.data).toMatchObject({ kind: 'rootfs-tarball', compression: 'xz' });
    expect(tarball.imageType).toBe('container');
    await expect(inspectImage(path('incus.tar.xz'), path('random.bin'))).rejects.toThrow(/an unknown kind of file/);
    await expect(inspectImage(path('rootfs.squashfs'), path('disk.qcow2'))).rejects.toThrow(
      /metadata: .* is a squashfs file, not a metadata tarball/,
    );
    await expect(inspectImage(path('rootfs.squashfs'), path('incus.tar.xz'))).rejects.toThrow(/metadata: .*squashfs/);
    await expect(inspectImage(path('random.bin'), path('rootfs.squashfs'))).rejects.toThrow(
      /metadata: .*not a tarball/,
    );
  });

  it('refuses missing, empty and non-regular files, naming the input', async () => {
    await expect(inspectImage(path('nope.tar.xz'), path('rootfs.squashfs'))).rejects.toThrow(
      /metadata: .*nope\.tar\.xz" does not exist/,
    );
    await expect(inspectImage(path('incus.tar.xz'), path('nope'))).rejects.toThrow(/rootfs: .*does not exist/);
    await expect(inspectImage(path('incus.tar.xz'), path('empty'))).rejects.toThrow(/rootfs: .*is empty/);
    await expect(inspectImage(path('rootfs'), path('rootfs.squashfs'))).rejects.toThrow(
      /metadata: .*not a regular file/,
    );
  });
});

describe('fingerprintOf', () => {
  const sha256sum = (...files: string[]): string =>
    execFileSync('sh', ['-c', 'cat "$@" | sha256sum', 'sh', ...files])
      .toString()
      .split(' ')[0] as string;

  /** An image of these files (fingerprintOf reads only the files, in order, through their descriptors). */
  const imageOf = async (metadata: string, data?: string): Promise<LocalImage> => ({
    metadata: { ...(await openInput(metadata, 'metadata')), compression: 'xz' },
    ...(data ? { data: { ...(await openInput(data, 'rootfs')), kind: 'squashfs' } } : {}),
    imageType: 'container',
    properties: {
      architecture: 'x86_64',
      creationDate: 1,
      os: 'o',
      release: 'r',
      variant: 'v',
      propertiesArchitecture: 'amd64',
      description: 'd',
    },
    size: 2,
  });

  it('gives the fingerprint as `cat a b | sha256sum` prints it', async () => {
    const files = [path('incus.tar.xz'), path('rootfs.squashfs')] as const;
    expect(await fingerprintOf(await imageOf(...files))).toBe(sha256sum(...files));
    expect(await fingerprintOf(await imageOf(path('unified.tar.xz')))).toBe(sha256sum(path('unified.tar.xz')));
  });

  it('hashes a prefix for resuming uploads', async () => {
    const expected = execFileSync('sh', ['-c', 'head -c 100 "$1" | sha256sum', 'sh', path('rootfs.squashfs')])
      .toString()
      .split(' ')[0];
    const prefix = async (length: number): Promise<string> => {
      const hash = createHash('sha256');
      await hashFileInto(await openInput(path('rootfs.squashfs'), 'rootfs'), [hash], length);
      return hash.digest('hex');
    };
    expect(await prefix(100)).toBe(expected);
    expect(await prefix(0)).toBe(sha256sum('/dev/null'));
  });
});

describe('UploadHashes and uploadKey', () => {
  it('gives the fingerprint of the files fed in order, and restarts a file from the state before it', async () => {
    const { UploadHashes } = await import('../../../src/image/hashing.js');
    const hashes = new UploadHashes();
    const first = hashes.before(0);
    first.update('metadata');
    hashes.finish(0, first, 'sha of metadata');
    // A retry of the second file starts again from the state after the first one.
    const abandoned = hashes.before(1);
    abandoned.update('half of the rootf');
    const second = hashes.before(1);
    second.update('rootfs');
    hashes.finish(1, second, 'sha of rootfs');
    expect(hashes.isDone(1)).toBe(true);
    expect(hashes.fileSha256s()).toEqual(['sha of metadata', 'sha of rootfs']);
    const expected = execFileSync('sh', ['-c', 'printf metadatarootfs | sha256sum']).toString().split(' ')[0];
    expect(hashes.fingerprint()).toBe(expected);
  });

  it('names an upload by the file sizes and the metadata tarball, before any full hash', async () => {
    const { uploadKey } = await import('../../../src/image/hashing.js');
    const image = await inspectImage(path('incus.tar.xz'), path('rootfs.squashfs'));
    const key = await uploadKey(image);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(await uploadKey(image)).toBe(key);
    expect(await uploadKey({ ...image, data: { ...image.data!, size: image.data!.size + 1 } })).not.toBe(key);
    const other = await inspectImage(path('incus.tar.gz'), path('rootfs.squashfs'));
    expect(await uploadKey(other)).not.toBe(key);
  });
});
