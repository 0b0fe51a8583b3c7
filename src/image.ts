/**
 * Local inspection of the image files before any network: what they are, what metadata.yaml
 * says, and the fingerprint clients will see.
 */
import { getExecOutput } from '@actions/exec';
import { which } from '@actions/io';
import { createHash, type Hash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { access, open, stat } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { ActionError, describeError } from './errors.js';

/** A data file: squashfs (container), qcow2 (VM), or a raw rootfs tarball (container). */
export type DataKind = 'squashfs' | 'qcow2' | 'rootfs-tarball';
export type ImageType = 'container' | 'virtual-machine';
export type Compression = 'xz' | 'gzip' | 'bzip2' | 'zstd' | 'none';

export interface ImageMetadata {
  architecture: string;
  creationDate: number;
  os: string;
  release: string;
  variant: string;
  propertiesArchitecture: string;
  description: string;
}

export interface LocalFile {
  path: string;
  size: number;
}

export interface DataFile extends LocalFile {
  kind: DataKind;
  /** Of a rootfs tarball. */
  compression?: Compression;
}

export interface LocalImage {
  /** The metadata tarball, or the unified tarball. */
  metadata: LocalFile & { compression: Compression };
  /** The data file of a split image; absent for a unified tarball. */
  data?: DataFile;
  imageType: ImageType;
  properties: ImageMetadata;
  /** Total bytes to publish. */
  size: number;
}

type Content = Compression | 'squashfs' | 'qcow2';

const MAGIC: { kind: Content; bytes: Buffer; offset: number }[] = [
  { kind: 'xz', bytes: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), offset: 0 },
  { kind: 'gzip', bytes: Buffer.from([0x1f, 0x8b]), offset: 0 },
  { kind: 'bzip2', bytes: Buffer.from('BZh'), offset: 0 },
  { kind: 'zstd', bytes: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), offset: 0 },
  { kind: 'none', bytes: Buffer.from('ustar'), offset: 257 },
  { kind: 'squashfs', bytes: Buffer.from('hsqs'), offset: 0 },
  { kind: 'qcow2', bytes: Buffer.from([0x51, 0x46, 0x49, 0xfb]), offset: 0 },
];

/** Identifies a file from its first bytes. */
export function detectContent(head: Buffer): Content | undefined {
  return MAGIC.find(({ bytes, offset }) => head.subarray(offset, offset + bytes.length).equals(bytes))?.kind;
}

/** Checks that the path is a readable, non-empty regular file. */
export async function checkFile(path: string, input: string): Promise<LocalFile> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new ActionError(
      `${input}: "${path}" does not exist. Check the path (relative paths start at the workspace, ${process.cwd()}).`,
      input,
    );
  }
  if (!info.isFile()) {
    throw new ActionError(`${input}: "${path}" is not a regular file. Give the path of the image file itself.`, input);
  }
  try {
    await access(path, constants.R_OK);
  } catch {
    throw new ActionError(
      `${input}: "${path}" cannot be read (permission denied). Make it readable by the runner.`,
      input,
    );
  }
  if (info.size === 0) {
    throw new ActionError(`${input}: "${path}" is empty. Did the build step fail?`, input);
  }
  return { path, size: info.size };
}

async function readHead(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(512);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Runs GNU tar quietly and returns its stdout; fails with its stderr. */
async function runTar(args: string[]): Promise<string> {
  const tar = await which('tar', false);
  if (!tar) {
    throw new ActionError(
      'tar is not installed on the runner; it is needed to read metadata.yaml. Install GNU tar and xz.',
    );
  }
  const result = await getExecOutput(tar, args, { silent: true, ignoreReturnCode: true });
  if (result.exitCode !== 0) throw new Error(result.stderr.trim() || `tar exited with status ${result.exitCode}`);
  return result.stdout;
}

/** Reads metadata.yaml out of a tarball, whatever its compression (GNU tar detects it). */
async function readMetadataYaml(path: string): Promise<string | undefined> {
  for (const member of ['metadata.yaml', './metadata.yaml']) {
    try {
      // --occurrence stops at the first match instead of reading the whole (possibly large) archive.
      return await runTar(['--occurrence=1', '-xOf', path, member]);
    } catch {
      // not under this name; try the next
    }
  }
  return undefined;
}

/** Whether a unified tarball holds a VM disk (rootfs.img) rather than a rootfs/ tree. */
async function unifiedIsVirtualMachine(path: string): Promise<boolean> {
  const listing = await runTar(['-tf', path]);
  return listing.split('\n').some((name) => name === 'rootfs.img' || name === './rootfs.img');
}

/**
 * Architecture names Incus accepts in metadata.yaml: its own names and the distribution aliases
 * it maps to them (as in Incus's osarch package).
 */
export const INCUS_ARCHITECTURES = new Set([
  'i686',
  'x86_64',
  'armv6l',
  'armv7l',
  'armv8l',
  'aarch64',
  'ppc',
  'ppc64',
  'ppc64le',
  's390x',
  'mips',
  'mips64',
  'riscv32',
  'riscv64',
  'loongarch64',
  'i386',
  'i586',
  'amd64',
  'x64',
  'armel',
  'armhf',
  'arm64',
  'arm64be',
  'powerpc',
  'powerpc64',
  'ppc64el',
  'mipsel',
  'mips64el',
  'loong64',
]);

function requireString(value: unknown, field: string, path: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ActionError(
      `metadata: metadata.yaml in "${path}" has no ${field}. Build the image with distrobuilder ` +
        `(build-incus or pack-incus), or add "${field}" to the image definition.`,
      'metadata',
    );
  }
  return value;
}

/** Checks metadata.yaml for what `incus-simplestreams add` needs. */
export function parseMetadataYaml(text: string, path: string): ImageMetadata {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new ActionError(
      `metadata: metadata.yaml in "${path}" is not valid YAML (${describeError(error)}).`,
      'metadata',
    );
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new ActionError(`metadata: metadata.yaml in "${path}" is not a YAML mapping.`, 'metadata');
  }
  const root = document as Record<string, unknown>;
  const creationDate = root['creation_date'];
  if (typeof creationDate !== 'number' || !Number.isInteger(creationDate) || creationDate <= 0) {
    throw new ActionError(
      `metadata: metadata.yaml in "${path}" has no valid creation_date (a Unix time in seconds).`,
      'metadata',
    );
  }
  const properties = root['properties'];
  if (typeof properties !== 'object' || properties === null) {
    throw new ActionError(`metadata: metadata.yaml in "${path}" has no properties section.`, 'metadata');
  }
  const props = properties as Record<string, unknown>;
  const architecture = requireString(root['architecture'], 'architecture', path);
  if (!INCUS_ARCHITECTURES.has(architecture)) {
    throw new ActionError(
      `metadata: metadata.yaml in "${path}" names architecture "${architecture}", which Incus does not know. ` +
        'Use an Incus architecture name such as x86_64 or aarch64 (distrobuilder sets it from image.architecture).',
      'metadata',
    );
  }
  return {
    architecture,
    creationDate,
    os: requireString(props['os'], 'properties.os', path),
    release: requireString(props['release'], 'properties.release', path),
    variant: requireString(props['variant'], 'properties.variant', path),
    propertiesArchitecture: requireString(props['architecture'], 'properties.architecture', path),
    description: requireString(props['description'], 'properties.description', path),
  };
}

async function inspectMetadataTarball(path: string): Promise<{ compression: Compression; yaml: string }> {
  const content = detectContent(await readHead(path));
  if (content === 'squashfs' || content === 'qcow2') {
    throw new ActionError(
      `metadata: "${path}" is a ${content} file, not a metadata tarball. Pass incus.tar.xz as metadata and the ${content} file as rootfs.`,
      'metadata',
    );
  }
  if (content === undefined) {
    throw new ActionError(
      `metadata: "${path}" is not a tarball (xz, gzip, bzip2, zstd or plain tar). Give the incus.tar.xz that distrobuilder wrote.`,
      'metadata',
    );
  }
  const yaml = await readMetadataYaml(path);
  if (yaml === undefined) {
    throw new ActionError(
      `metadata: "${path}" holds no metadata.yaml. LXC-format images (build-lxc, meta.tar.xz) cannot be ` +
        'published to an Incus registry: build with `distrobuilder build-incus` (or pack-incus) instead.',
      'metadata',
    );
  }
  return { compression: content, yaml };
}

async function inspectDataFile(path: string): Promise<DataFile> {
  const file = await checkFile(path, 'rootfs');
  const content = detectContent(await readHead(path));
  if (content === 'squashfs' || content === 'qcow2') return { ...file, kind: content };
  if (content !== undefined) return { ...file, kind: 'rootfs-tarball', compression: content };
  throw new ActionError(
    `rootfs: "${path}" is an unknown kind of file. Give the rootfs.squashfs (container) or disk.qcow2 (VM) that ` +
      'distrobuilder build-incus wrote, or a rootfs.tar.xz.',
    'rootfs',
  );
}

/** Inspects the image files named by the metadata and rootfs inputs. */
export async function inspectImage(metadataPath: string, rootfsPath: string): Promise<LocalImage> {
  const metadataFile = await checkFile(metadataPath, 'metadata');
  const data = rootfsPath === '' ? undefined : await inspectDataFile(rootfsPath);
  const { compression, yaml } = await inspectMetadataTarball(metadataPath);
  const properties = parseMetadataYaml(yaml, metadataPath);
  let imageType: ImageType;
  if (data) {
    imageType = data.kind === 'qcow2' ? 'virtual-machine' : 'container';
  } else {
    imageType = (await unifiedIsVirtualMachine(metadataPath)) ? 'virtual-machine' : 'container';
  }
  return {
    metadata: { ...metadataFile, compression },
    ...(data ? { data } : {}),
    imageType,
    properties,
    size: metadataFile.size + (data?.size ?? 0),
  };
}

/**
 * The image fingerprint Incus shows and clients verify: sha256 over the metadata tarball followed
 * by the data file, or over a unified tarball alone. One hash, one read of each file.
 */
export async function fingerprintOf(paths: string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const path of paths) await hashFileInto(path, [hash]);
  return hash.digest('hex');
}

/** Feeds the first `length` bytes of a file (all of it by default) to the hashes. */
export async function hashFileInto(path: string, hashes: Hash[], length?: number): Promise<void> {
  if (length === 0) return;
  const range = length === undefined ? {} : { start: 0, end: length - 1 };
  for await (const chunk of createReadStream(path, { ...range, highWaterMark: 1024 * 1024 })) {
    for (const hash of hashes) hash.update(chunk as Buffer);
  }
}

/**
 * The fingerprint and file hashes of an image whose bytes are hashed as they are uploaded, file
 * after file. After each file it keeps a copy of the running fingerprint hash, so that a retry
 * after a dropped connection need not read the files already sent again.
 */
export class UploadHashes {
  private readonly done: Hash[] = [];

  /** The fingerprint hash as it stands before file `index` (a fresh copy). */
  before(index: number): Hash {
    return index === 0 ? createHash('sha256') : (this.done[index - 1] as Hash).copy();
  }

  isDone(index: number): boolean {
    return this.done[index] !== undefined;
  }

  /** Records file `index`, given the fingerprint hash fed with all its bytes. */
  finish(index: number, fingerprintSoFar: Hash): void {
    this.done[index] = fingerprintSoFar.copy();
  }

  fingerprint(): string {
    const last = this.done.at(-1);
    if (!last) throw new Error('no file has been hashed');
    return last.copy().digest('hex');
  }
}

/**
 * Names the server-side upload directory of an image before its fingerprint is known (it is
 * computed while uploading): the file sizes and the start of the metadata tarball, which holds
 * metadata.yaml with its creation date. Two images sharing a key only share a lock; what a
 * resumed upload keeps is checked byte for byte.
 */
export async function uploadKey(image: LocalImage): Promise<string> {
  const hash = createHash('sha256').update(`lxc-publish upload ${image.metadata.size} ${image.data?.size ?? 0}\n`);
  await hashFileInto(image.metadata.path, [hash], Math.min(image.metadata.size, 16 * 1024 * 1024));
  return hash.digest('hex');
}

export function imageFiles(image: LocalImage): LocalFile[] {
  return image.data ? [image.metadata, image.data] : [image.metadata];
}
