/**
 * What a qcow2 disk may refer to outside itself: a backing file (header bytes 8-15), an external
 * data file (incompatible feature bit 2, header extension 0x44415441), or features this check
 * does not know. A client that converts such a disk (qemu-img convert) reads those files on its
 * own host, so a published disk must stand alone.
 */

/** Bytes to read from the start of a disk: the header and its extensions fit in the first cluster. */
export const QCOW2_HEAD_BYTES = 2 * 1024 * 1024;

const EXTERNAL_DATA_FILE_BIT = 2n;
/** Incompatible feature bits qemu knows: dirty, corrupt, external data file, compression type, extended L2. */
const KNOWN_INCOMPATIBLE = 0b11111n;
const EXTENSION_END = 0;
const EXTENSION_DATA_FILE = 0x44415441;

function name(head: Buffer, offset: number, length: number): string {
  if (length <= 0 || offset + length > head.length) return '';
  return ` "${head.toString('utf8', offset, offset + Math.min(length, 256)).replace(/[\u0000-\u001f\u007f]/g, '?')}"`;
}

/**
 * Why the disk whose first bytes are `head` is not self-contained (for a message), or undefined
 * when it refers to nothing outside itself.
 */
export function qcow2Reference(head: Buffer): string | undefined {
  if (head.length < 72) return 'a qcow2 header that is cut short';
  const version = head.readUInt32BE(4);
  if (version !== 2 && version !== 3) return `qcow2 version ${version}, which this check does not know`;
  const backingOffset = head.readBigUInt64BE(8);
  if (backingOffset !== 0n) {
    const length = head.readUInt32BE(16);
    return `a backing file${backingOffset < BigInt(head.length) ? name(head, Number(backingOffset), length) : ''}`;
  }
  let extensionsAt = 72;
  if (version === 3) {
    if (head.length < 104) return 'a qcow2 header that is cut short';
    const incompatible = head.readBigUInt64BE(72);
    if ((incompatible >> EXTERNAL_DATA_FILE_BIT) & 1n) return 'an external data file';
    if (incompatible & ~KNOWN_INCOMPATIBLE) {
      return `incompatible features this check does not know (0x${incompatible.toString(16)})`;
    }
    extensionsAt = head.readUInt32BE(100);
  }
  for (let offset = extensionsAt, count = 0; offset + 8 <= head.length; count++) {
    if (count > 1000) return 'too many qcow2 header extensions';
    const type = head.readUInt32BE(offset);
    const length = head.readUInt32BE(offset + 4);
    if (type === EXTENSION_END) return undefined;
    if (type === EXTENSION_DATA_FILE) return `an external data file${name(head, offset + 8, length)}`;
    offset += 8 + Math.ceil(length / 8) * 8;
  }
  return undefined;
}
