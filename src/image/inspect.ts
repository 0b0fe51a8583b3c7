/**
 * Local inspection of the image files before any network: what each file is (from its content,
 * not its name), what metadata.yaml says, and whether a unified tarball holds a VM. Each file is
 * opened once here; everything later reads it through that descriptor (image/local-file.ts).
 */
import { ActionError } from '../common/errors.js';
import type { ImageType } from '../simplestreams/images-index.js';
import type { Compression, DataFile, LocalFile, LocalImage } from './local-image.js';
import { closeFiles, openFile, readAt } from './local-file.js';
import { METADATA_YAML_MAX_BYTES, parseMetadataYaml } from './metadata.js';
import { QCOW2_HEAD_BYTES, qcow2Reference } from './qcow2.js';
import { checkRootfsTarball, type RootfsLimits } from './rootfs.js';
import { scanTar, TarError, type EntryType } from './tar.js';

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

/** A split metadata tarball holds metadata.yaml and templates: a few kilobytes once decompressed. */
const METADATA_TARBALL_MAX_BYTES = 64 * 1024 * 1024;
/** A unified tarball is read until metadata.yaml and its rootfs are found, up to this expansion. */
const UNIFIED_MAX_EXPANSION = 1000;
const UNIFIED_MIN_LIMIT = 256 * 1024 * 1024;

/** Identifies a file from its first bytes. */
export function detectContent(head: Buffer): Content | undefined {
  return MAGIC.find(({ bytes, offset }) => head.subarray(offset, offset + bytes.length).equals(bytes))?.kind;
}

/** Opens the input's file once and checks that it is a readable, non-empty regular file. */
export async function openInput(path: string, input: 'metadata' | 'rootfs'): Promise<LocalFile> {
  let handle;
  try {
    handle = await openFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new ActionError(
        `${input}: "${path}" cannot be read (permission denied). Make it readable by the runner.`,
        input,
      );
    }
    throw new ActionError(
      `${input}: "${path}" does not exist. Check the path (relative paths start at the workspace, ${process.cwd()}).`,
      input,
    );
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) {
      throw new ActionError(
        `${input}: "${path}" is not a regular file. Give the path of the image file itself.`,
        input,
      );
    }
    if (info.size === 0) throw new ActionError(`${input}: "${path}" is empty. Did the build step fail?`, input);
    return { path, size: info.size, handle, mtimeMs: info.mtimeMs, input };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

const ENTRY_KINDS: Record<EntryType, string> = {
  file: 'a file',
  hardlink: 'a hard link',
  symlink: 'a symbolic link',
  char: 'a character device',
  block: 'a block device',
  directory: 'a directory',
  fifo: 'a FIFO',
  other: 'a special entry',
};

function unreadable(file: LocalFile, error: unknown): never {
  if (!(error instanceof TarError)) throw error;
  throw new ActionError(
    `${file.input}: "${file.path}" cannot be read as a tarball (${error.message}). Give the complete file that distrobuilder wrote.`,
    file.input,
  );
}

/** Refuses a qcow2 disk that refers to files outside itself. */
function checkDisk(head: Buffer, what: string, input: 'metadata' | 'rootfs'): void {
  const problem = qcow2Reference(head);
  if (problem === undefined) return;
  throw new ActionError(
    `${input}: ${what} is a qcow2 disk with ${problem}: it refers to a file outside itself, which a client that ` +
      'converts the disk would read on its own host. Publish a standalone disk (qemu-img convert -O qcow2 disk.qcow2 ' +
      'standalone.qcow2, without -B or data_file).',
    input,
  );
}

interface MetadataFindings {
  yaml: string;
  /** Of a unified tarball: what its first rootfs entry says. */
  imageType?: ImageType;
}

/**
 * Reads metadata.yaml out of the metadata (or unified) tarball as incus-simplestreams does: the
 * first member named exactly metadata.yaml. In a unified tarball the first rootfs/ or rootfs.img
 * entry gives the type (and the disk is checked); reading stops once both are known.
 */
async function readMetadataTarball(
  file: LocalFile,
  compression: Compression,
  unified: boolean,
): Promise<MetadataFindings> {
  const { path } = file;
  let yaml: string | undefined;
  let otherName: string | undefined;
  let imageType: ImageType | undefined;
  const limit = unified ? Math.max(UNIFIED_MIN_LIMIT, UNIFIED_MAX_EXPANSION * file.size) : METADATA_TARBALL_MAX_BYTES;
  try {
    await scanTar(file, compression, async (entry, reader) => {
      if (reader.position > limit) {
        throw new ActionError(
          unified
            ? `metadata: "${path}" expands more than ${UNIFIED_MAX_EXPANSION}-fold before its metadata.yaml and rootfs: ` +
                'it is not an image distrobuilder wrote. Give the unified tarball of a build-incus --type=unified build.'
            : `metadata: "${path}" holds more than ${METADATA_TARBALL_MAX_BYTES / 1024 / 1024} MiB before its metadata.yaml; a ` +
                'metadata tarball holds metadata.yaml and templates (a few kilobytes). Give the incus.tar.xz that distrobuilder wrote.',
          'metadata',
        );
      }
      if (yaml === undefined && entry.name === 'metadata.yaml') {
        if (entry.type !== 'file') {
          throw new ActionError(
            `metadata: metadata.yaml in "${path}" is ${ENTRY_KINDS[entry.type]}, not a file; incus-simplestreams ` +
              'reads the first member named metadata.yaml. Pack the file itself (tar --dereference).',
            'metadata',
          );
        }
        if (entry.size > METADATA_YAML_MAX_BYTES) {
          throw new ActionError(
            `metadata: metadata.yaml in "${path}" is ${entry.size} bytes; the limit is 1 MiB (distrobuilder ` +
              'writes a few kilobytes). Check what was packed as metadata.yaml.',
            'metadata',
          );
        }
        yaml = (await reader.read(entry.size)).toString('utf8');
      } else if (yaml === undefined && otherName === undefined && /(^|\/)metadata\.yaml\/?$/.test(entry.name)) {
        otherName = entry.name;
      }
      if (unified && imageType === undefined) {
        const name = entry.name.replace(/^\.\//, '');
        if (name === 'rootfs.img') {
          imageType = 'virtual-machine';
          const head = entry.type === 'file' ? await reader.read(QCOW2_HEAD_BYTES) : Buffer.alloc(0);
          if (detectContent(head) === 'qcow2') checkDisk(head, `rootfs.img in "${path}"`, 'metadata');
        } else if (name === 'rootfs' || name.startsWith('rootfs/')) {
          imageType = 'container';
        }
      }
      return yaml !== undefined && (!unified || imageType !== undefined);
    });
  } catch (error) {
    unreadable(file, error);
  }
  if (yaml === undefined) {
    if (otherName !== undefined) {
      throw new ActionError(
        `metadata: "${path}" holds "${otherName}" but no member named exactly metadata.yaml, which is the one ` +
          'incus-simplestreams reads: the server would refuse the image after the upload. Pack it at the top of the ' +
          'tarball under that name (tar -C DIR -cJf incus.tar.xz metadata.yaml templates, not "." or a directory).',
        'metadata',
      );
    }
    throw new ActionError(
      `metadata: "${path}" holds no metadata.yaml. LXC-format images (build-lxc, meta.tar.xz) cannot be ` +
        'published to an Incus registry: build with `distrobuilder build-incus` (or pack-incus) instead.',
      'metadata',
    );
  }
  if (unified && imageType === undefined) {
    throw new ActionError(
      `metadata: "${path}" holds metadata.yaml but neither rootfs/ nor rootfs.img, so it is not a unified image. ` +
        'If it is the metadata tarball of a split image, give its data file (rootfs.squashfs or disk.qcow2) as rootfs.',
      'metadata',
    );
  }
  return { yaml, ...(imageType ? { imageType } : {}) };
}

async function checkMetadataKind(file: LocalFile): Promise<Compression> {
  const content = detectContent(await readAt(file, 0, 512));
  if (content === 'squashfs' || content === 'qcow2') {
    throw new ActionError(
      `metadata: "${file.path}" is a ${content} file, not a metadata tarball. Pass incus.tar.xz as metadata and the ${content} file as rootfs.`,
      'metadata',
    );
  }
  if (content === undefined) {
    throw new ActionError(
      `metadata: "${file.path}" is not a tarball (xz, gzip, bzip2, zstd or plain tar). Give the incus.tar.xz that distrobuilder wrote.`,
      'metadata',
    );
  }
  return content;
}

async function inspectDataFile(file: LocalFile, limits: RootfsLimits): Promise<DataFile> {
  const content = detectContent(await readAt(file, 0, 512));
  if (content === 'squashfs') return { ...file, kind: content };
  if (content === 'qcow2') {
    checkDisk(await readAt(file, 0, QCOW2_HEAD_BYTES), `"${file.path}"`, 'rootfs');
    return { ...file, kind: content };
  }
  if (content !== undefined) {
    const tar = await checkRootfsTarball(file, content, limits);
    return { ...file, kind: 'rootfs-tarball', compression: content, tar };
  }
  throw new ActionError(
    `rootfs: "${file.path}" is an unknown kind of file. Give the rootfs.squashfs (container) or disk.qcow2 (VM) that ` +
      'distrobuilder build-incus wrote, or a rootfs.tar.xz.',
    'rootfs',
  );
}

/**
 * Inspects the image files named by the metadata and rootfs inputs. The returned image holds
 * them open: close them with closeImage once the run is over.
 */
export async function inspectImage(
  metadataPath: string,
  rootfsPath: string,
  limits: RootfsLimits = DEFAULT_ROOTFS_LIMITS,
): Promise<LocalImage> {
  const opened: LocalFile[] = [];
  try {
    const metadataFile = await openInput(metadataPath, 'metadata');
    opened.push(metadataFile);
    let data: DataFile | undefined;
    if (rootfsPath !== '') {
      const rootfsFile = await openInput(rootfsPath, 'rootfs');
      opened.push(rootfsFile);
      data = await inspectDataFile(rootfsFile, limits);
    }
    const compression = await checkMetadataKind(metadataFile);
    const { yaml, imageType: unifiedType } = await readMetadataTarball(metadataFile, compression, !data);
    const properties = parseMetadataYaml(yaml, metadataPath);
    const imageType: ImageType = data
      ? data.kind === 'qcow2'
        ? 'virtual-machine'
        : 'container'
      : (unifiedType ?? 'container');
    return {
      metadata: { ...metadataFile, compression },
      ...(data ? { data } : {}),
      imageType,
      properties,
      size: metadataFile.size + (data?.size ?? 0),
    };
  } catch (error) {
    await closeFiles(opened);
    throw error;
  }
}

/** Defaults of the max-rootfs-entries and max-rootfs-size inputs. */
export const DEFAULT_ROOTFS_LIMITS: RootfsLimits = { maxEntries: 500_000, maxBytes: 16 * 1024 ** 3 };
