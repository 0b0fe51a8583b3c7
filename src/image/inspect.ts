/**
 * Local inspection of the image files before any network: what each file is (from its content,
 * not its name), what metadata.yaml says, and whether a unified tarball holds a VM.
 */
import { constants } from 'node:fs';
import type { Stats } from 'node:fs';
import { access, open, stat } from 'node:fs/promises';
import { ActionError } from '../common/errors.js';
import type { ImageType } from '../simplestreams/images-index.js';
import type { Compression, DataFile, LocalFile, LocalImage } from './local-image.js';
import { parseMetadataYaml } from './metadata.js';
import { checkQcow2 } from './qcow2.js';
import { readMember, unifiedRootKind } from './tar.js';

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

function identityOf(info: Stats): string {
  return `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}`;
}

/**
 * Fails when a file is no longer the one inspected (replaced, grown, rewritten): what was checked
 * must be what was uploaded. Called once the upload is done.
 */
export async function checkUnchanged(files: readonly LocalFile[], input: (file: LocalFile) => string): Promise<void> {
  for (const file of files) {
    if (file.identity === undefined) continue; // made by this run (a converted squashfs)
    const now = await stat(file.path).catch(() => undefined);
    if (!now || identityOf(now) !== file.identity) {
      const name = input(file);
      throw new ActionError(
        `${name}: "${file.path}" changed while it was being published (replaced, or written to). Nothing was ` +
          'published. Make sure nothing writes the image files during the step, and run it again.',
        name,
      );
    }
  }
}

/** Checks that the path is a readable, non-empty regular file. */
async function checkFile(path: string, input: string): Promise<LocalFile> {
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
  return { path, size: info.size, identity: identityOf(info) };
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
  // Only the exact name: incus-simplestreams reads "metadata.yaml", not "./metadata.yaml".
  const yaml = await readMember(path, 'metadata.yaml');
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
  if (content === 'qcow2') {
    const handle = await open(path, 'r');
    try {
      await checkQcow2(handle, path, file.size);
    } finally {
      await handle.close();
    }
  }
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
    imageType = (await unifiedRootKind(metadataPath)) === 'vm' ? 'virtual-machine' : 'container';
  }
  return {
    metadata: { ...metadataFile, compression },
    ...(data ? { data } : {}),
    imageType,
    properties,
    size: metadataFile.size + (data?.size ?? 0),
  };
}
