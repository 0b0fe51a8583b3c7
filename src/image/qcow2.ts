/**
 * A qcow2 disk must hold its whole disk itself. A qcow2 can point at other files: a backing file
 * (header bytes 8–15) or an external data file (incompatible feature bit 2, header extension
 * 0x44415441). Nothing on the runner follows them, but a client that converts the disk may read
 * those paths on its own host (a host file leaking into an instance). Such a disk is refused.
 */
import type { FileHandle } from 'node:fs/promises';
import { ActionError } from '../common/errors.js';

const EXTERNAL_DATA_FILE_FEATURE = 1n << 2n;
const EXTENSION_END = 0;
const EXTENSION_DATA_FILE = 0x44415441;
const MAX_HEADER_CLUSTER = 2 << 20;

/** Why the qcow2 header in `header` refers to a file outside itself, or undefined when it does not. */
export function qcow2OutsideReference(header: Buffer): string | undefined {
  if (header.length < 72) return 'its header is cut short';
  const version = header.readUInt32BE(4);
  if (version !== 2 && version !== 3) return `its header has version ${version} (2 or 3 expected)`;
  if (header.readBigUInt64BE(8) !== 0n || header.readUInt32BE(16) !== 0) {
    return 'it names a backing file (qemu-img create -b)';
  }
  let extensions = 72;
  if (version === 3) {
    if (header.length < 104) return 'its header is cut short';
    if ((header.readBigUInt64BE(72) & EXTERNAL_DATA_FILE_FEATURE) !== 0n) {
      return 'it keeps its data in an external data file (qemu-img create -o data_file=…)';
    }
    extensions = header.readUInt32BE(100);
  }
  while (extensions + 8 <= header.length) {
    const type = header.readUInt32BE(extensions);
    const length = header.readUInt32BE(extensions + 4);
    if (type === EXTENSION_END) return undefined;
    if (type === EXTENSION_DATA_FILE) return 'it names an external data file';
    extensions += 8 + Math.ceil(length / 8) * 8;
  }
  return 'its header extensions run past the first cluster';
}

/** Reads the qcow2 header cluster through `handle` and refuses a disk that refers outside itself. */
export async function checkQcow2(handle: FileHandle, path: string, size: number): Promise<void> {
  const first = Buffer.alloc(Math.min(size, 64 * 1024));
  await handle.read(first, 0, first.length, 0);
  const clusterBits = first.length >= 24 ? first.readUInt32BE(20) : 16;
  const clusterSize = Math.min(size, MAX_HEADER_CLUSTER, 2 ** Math.min(Math.max(clusterBits, 9), 21));
  let header = first;
  if (clusterSize > first.length) {
    header = Buffer.alloc(clusterSize);
    await handle.read(header, 0, clusterSize, 0);
  }
  const problem = qcow2OutsideReference(header);
  if (problem) {
    throw new ActionError(
      `rootfs: "${path}" is a qcow2 disk that does not hold itself: ${problem}. A client converting it could ` +
        'read files of its own host. Flatten it into one self-contained file first: qemu-img convert -O qcow2 ' +
        'disk.qcow2 flat.qcow2.',
      'rootfs',
    );
  }
}
