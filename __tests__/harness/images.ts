// Builds small split Incus images as distrobuilder would: a metadata tarball (metadata.yaml +
// templates/) plus rootfs.squashfs (container) or disk.qcow2 (VM); unified tarballs; and
// containers that boot (a busybox rootfs) for the tests that launch images with real daemons.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { runOk } from './exec.js';

export interface TestImage {
  dir: string;
  metadata: string;
  rootfs: string;
  fingerprint: string;
  os: string;
  release: string;
  variant: string;
  architecture: string;
  creationDate: number;
  description: string;
}

export interface ImageOptions {
  os?: string;
  release?: string;
  variant?: string;
  /** Incus architecture name, e.g. 'x86_64', 'aarch64'. */
  architecture?: string;
  /** Unix seconds; defaults to a fixed base plus one minute per image made in this process. */
  creationDate?: number;
  description?: string;
  /** Size of the random payload file in the rootfs (container) or of the raw disk data (VM). */
  rootfsBytes?: number;
  /** Metadata tarball compression (incus.tar.xz / incus.tar.gz) and squashfs compressor. */
  compression?: 'xz' | 'gzip';
  /** A container's payload file, copied in place of random bytes (for two images a small change apart). */
  payloadFile?: string;
}

export interface MetadataOptions {
  os: string;
  release: string;
  variant: string;
  architecture: string;
  creationDate: number;
  description: string;
  expiryDate?: number;
  serial?: string;
  name?: string;
  /** Distribution architecture name in properties; derived from architecture by default. */
  distroArchitecture?: string;
  /** Include the templates section (default true). */
  templates?: boolean;
}

const ARCH_MAP: Record<string, string> = {
  x86_64: 'amd64',
  i686: 'i386',
  aarch64: 'arm64',
  armv7l: 'armhf',
  armv6l: 'armel',
  ppc64le: 'ppc64el',
  s390x: 's390x',
  riscv64: 'riscv64',
  loongarch64: 'loong64',
};

/** Distribution-style architecture name (amd64, arm64…) for an Incus architecture name. */
export function distroArchitecture(incusArch: string): string {
  return ARCH_MAP[incusArch] ?? incusArch;
}

/** distrobuilder's serial: creation time in UTC as YYYYMMDD_hh:mm. */
export function distrobuilderSerial(unixSeconds: number): string {
  const d = new Date(unixSeconds * 1000);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}_${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
}

/** The serial incus-simplestreams derives (YYYYMMDDhhmm, with TZ=UTC). */
export function simplestreamsSerial(unixSeconds: number): string {
  return distrobuilderSerial(unixSeconds).replace(/[_:]/g, '');
}

const HOSTNAME_TEMPLATE = '{{ instance.name }}\n';

export function metadataYaml(opts: MetadataOptions): string {
  const serial = opts.serial ?? distrobuilderSerial(opts.creationDate);
  const arch = opts.distroArchitecture ?? distroArchitecture(opts.architecture);
  const name = opts.name ?? `${opts.os.toLowerCase()}-${opts.release}-${arch}-${opts.variant}-${serial}`;
  // Strings are written JSON-quoted (valid YAML double-quoted scalars) so that values such as the
  // serial "20260101_00:00" can never be read back as numbers by any YAML parser.
  const q = (s: string) => JSON.stringify(s);
  const lines = [
    `architecture: ${q(opts.architecture)}`,
    `creation_date: ${Math.trunc(opts.creationDate)}`,
    `expiry_date: ${Math.trunc(opts.expiryDate ?? opts.creationDate + 30 * 24 * 3600)}`,
    'properties:',
    `  architecture: ${q(arch)}`,
    `  description: ${q(opts.description)}`,
    `  name: ${q(name)}`,
    `  os: ${q(opts.os)}`,
    `  release: ${q(opts.release)}`,
    `  serial: ${q(serial)}`,
    `  variant: ${q(opts.variant)}`,
  ];
  if (opts.templates === false) {
    lines.push('templates: {}');
  } else {
    lines.push(
      'templates:',
      '  /etc/hostname:',
      '    when:',
      '    - create',
      '    - copy',
      '    create_only: false',
      '    template: hostname.tpl',
      '    properties: {}',
    );
  }
  return lines.join('\n') + '\n';
}

// Fixed base (2026-01-01T00:00:00Z) + one minute per image: distinct serials within a process.
const BASE_CREATION_DATE = 1767225600;
let imageCounter = 0;

function resolveOptions(opts: ImageOptions) {
  const os = opts.os ?? 'Crynux';
  const release = opts.release ?? 'bookworm';
  const architecture = opts.architecture ?? 'x86_64';
  return {
    os,
    release,
    variant: opts.variant ?? 'default',
    architecture,
    creationDate: opts.creationDate ?? BASE_CREATION_DATE + imageCounter++ * 60,
    description: opts.description ?? `${os} ${release} ${distroArchitecture(architecture)} (test)`,
    compression: opts.compression ?? 'xz',
    payloadFile: opts.payloadFile,
  };
}

/** Writes `bytes` random bytes to file in 1 MiB chunks (constant memory). */
export async function writeRandomFile(file: string, bytes: number): Promise<void> {
  const out = createWriteStream(file);
  const chunk = 1 << 20;
  try {
    for (let left = bytes; left > 0; left -= chunk) {
      if (!out.write(randomBytes(Math.min(chunk, left)))) await once(out, 'drain');
    }
  } finally {
    out.end();
    await once(out, 'close');
  }
}

/** The sha256 of one file, as the registry's index records it. */
export function sha256File(file: string): Promise<string> {
  return sha256Files([file]);
}

async function sha256Files(files: string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const f of files) {
    for await (const b of createReadStream(f, { highWaterMark: 1 << 20 })) hash.update(b as Buffer);
  }
  return hash.digest('hex');
}

/** Tars `members` of `dir` owned by root, in name order, compressed as `compression` says. */
async function reproducibleTar(dir: string, out: string, compression: string[], members: string[]): Promise<void> {
  await runOk('tar', [
    '-C',
    dir,
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--sort=name',
    ...compression,
    '-cf',
    out,
    ...members,
  ]);
}

async function buildMetadataTarball(dir: string, yamlText: string, compression: 'xz' | 'gzip'): Promise<string> {
  const staging = path.join(dir, '.meta-staging');
  await fsp.rm(staging, { recursive: true, force: true });
  await fsp.mkdir(path.join(staging, 'templates'), { recursive: true });
  await fsp.writeFile(path.join(staging, 'metadata.yaml'), yamlText);
  await fsp.writeFile(path.join(staging, 'templates', 'hostname.tpl'), HOSTNAME_TEMPLATE);
  const out = path.join(dir, compression === 'xz' ? 'incus.tar.xz' : 'incus.tar.gz');
  await reproducibleTar(staging, out, [compression === 'xz' ? '-J' : '-z'], ['metadata.yaml', 'templates']);
  await fsp.rm(staging, { recursive: true, force: true });
  return out;
}

/** A qcow2 disk: `bytes` of random data, or an empty 64 MiB disk. */
async function makeQcow2Disk(disk: string, scratchDir: string, bytes?: number): Promise<void> {
  if (bytes && bytes > 0) {
    const raw = path.join(scratchDir, '.disk.raw');
    await writeRandomFile(raw, Math.ceil(bytes / 512) * 512);
    await runOk('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, disk]);
    await fsp.rm(raw, { force: true });
  } else {
    await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  }
}

type ResolvedOptions = ReturnType<typeof resolveOptions>;

/** Writes a container's root file system into `rootfs` (which it creates). */
type RootfsFiller = (rootfs: string, o: ResolvedOptions, payloadBytes: number) => Promise<void>;

/** The rootfs of the test images: /etc/os-release, /etc/hostname and a random payload file. */
const plainRootfs: RootfsFiller = async (rootfs, o, payloadBytes) => {
  await fsp.mkdir(path.join(rootfs, 'etc'), { recursive: true });
  await fsp.writeFile(
    path.join(rootfs, 'etc', 'os-release'),
    `NAME="${o.os}"\nID=${o.os.toLowerCase()}\nVERSION_CODENAME=${o.release}\nPRETTY_NAME="${o.description}"\n`,
  );
  await fsp.writeFile(path.join(rootfs, 'etc', 'hostname'), 'localhost\n');
  if (o.payloadFile) await fsp.copyFile(o.payloadFile, path.join(rootfs, 'payload.bin'));
  else await writeRandomFile(path.join(rootfs, 'payload.bin'), payloadBytes);
};

async function makeImage(
  dir: string,
  opts: ImageOptions,
  vm: boolean,
  fillRootfs: RootfsFiller = plainRootfs,
): Promise<TestImage> {
  const o = resolveOptions(opts);
  await fsp.mkdir(dir, { recursive: true });
  const yamlText = metadataYaml({
    os: o.os,
    release: o.release,
    variant: o.variant,
    architecture: o.architecture,
    creationDate: o.creationDate,
    description: o.description,
  });
  const metaPromise = buildMetadataTarball(dir, yamlText, o.compression);

  let rootfs: string;
  if (!vm) {
    const staging = path.join(dir, '.rootfs-staging');
    await fsp.rm(staging, { recursive: true, force: true });
    const bytes = opts.payloadFile ? (await fsp.stat(opts.payloadFile)).size : (opts.rootfsBytes ?? 4096);
    await fillRootfs(staging, o, bytes);
    rootfs = path.join(dir, 'rootfs.squashfs');
    // Random data does not compress: store data blocks and fragments uncompressed when large.
    const big = bytes > 1 << 20 ? ['-noD', '-noF'] : [];
    await runOk('mksquashfs', [
      staging,
      rootfs,
      '-noappend',
      '-quiet',
      '-no-progress',
      '-comp',
      o.compression,
      ...big,
      '-all-root',
    ]);
    await fsp.rm(staging, { recursive: true, force: true });
  } else {
    rootfs = path.join(dir, 'disk.qcow2');
    await makeQcow2Disk(rootfs, dir, opts.rootfsBytes);
  }
  const metadata = await metaPromise;
  const fingerprint = await sha256Files([metadata, rootfs]);
  return {
    dir,
    metadata,
    rootfs,
    fingerprint,
    os: o.os,
    release: o.release,
    variant: o.variant,
    architecture: o.architecture,
    creationDate: o.creationDate,
    description: o.description,
  };
}

export function makeSplitContainerImage(dir: string, opts: ImageOptions = {}): Promise<TestImage> {
  return makeImage(dir, opts, false);
}

export function makeSplitVmImage(dir: string, opts: ImageOptions = {}): Promise<TestImage> {
  return makeImage(dir, opts, true);
}

/** Compression of a unified tarball: distrobuilder's `--compression` (xz by default), or none. */
export type UnifiedCompression = 'xz' | 'gzip' | 'bzip2' | 'zstd' | 'none';

export interface UnifiedImageOptions extends Omit<ImageOptions, 'compression'> {
  /** A VM image: the tarball holds rootfs.img (a qcow2 disk) instead of a rootfs/ tree. */
  vm?: boolean;
  /** Tarball compression (default xz, as distrobuilder writes `<name>.tar.xz`). */
  compression?: UnifiedCompression;
}

const UNIFIED_TAR: Record<UnifiedCompression, { flag: string[]; extension: string }> = {
  xz: { flag: ['-J'], extension: '.tar.xz' },
  gzip: { flag: ['-z'], extension: '.tar.gz' },
  bzip2: { flag: ['-j'], extension: '.tar.bz2' },
  zstd: { flag: ['--zstd'], extension: '.tar.zst' },
  none: { flag: [], extension: '.tar' },
};

/**
 * A unified image as `distrobuilder build-incus --type=unified` writes it: one tarball holding
 * metadata.yaml, templates/ and rootfs/ (container) or rootfs.img (VM, a qcow2 disk). Its
 * fingerprint is the sha256 of the tarball. `metadata` is the tarball and `rootfs` is '' (the
 * inputs a workflow passes for a unified image).
 */
export function makeUnifiedImage(dir: string, opts: UnifiedImageOptions = {}): Promise<TestImage> {
  return buildUnifiedImage(dir, opts, plainRootfs);
}

async function buildUnifiedImage(dir: string, opts: UnifiedImageOptions, fillRootfs: RootfsFiller): Promise<TestImage> {
  const o = resolveOptions({ ...opts, compression: 'xz' });
  const compression = opts.compression ?? 'xz';
  await fsp.mkdir(dir, { recursive: true });
  const staging = path.join(dir, '.unified-staging');
  await fsp.rm(staging, { recursive: true, force: true });
  await fsp.mkdir(path.join(staging, 'templates'), { recursive: true });
  await fsp.writeFile(
    path.join(staging, 'metadata.yaml'),
    metadataYaml({
      os: o.os,
      release: o.release,
      variant: o.variant,
      architecture: o.architecture,
      creationDate: o.creationDate,
      description: o.description,
    }),
  );
  await fsp.writeFile(path.join(staging, 'templates', 'hostname.tpl'), HOSTNAME_TEMPLATE);
  let data: string;
  if (opts.vm) {
    data = 'rootfs.img';
    await makeQcow2Disk(path.join(staging, data), dir, opts.rootfsBytes);
  } else {
    data = 'rootfs';
    await fillRootfs(path.join(staging, data), o, opts.rootfsBytes ?? 4096);
  }
  const { flag, extension } = UNIFIED_TAR[compression];
  const tarball = path.join(dir, `${o.os.toLowerCase()}-${o.release}-${o.variant}${extension}`);
  await reproducibleTar(staging, tarball, flag, ['metadata.yaml', 'templates', data]);
  await fsp.rm(staging, { recursive: true, force: true });
  return {
    dir,
    metadata: tarball,
    rootfs: '',
    fingerprint: await sha256Files([tarball]),
    os: o.os,
    release: o.release,
    variant: o.variant,
    architecture: o.architecture,
    creationDate: o.creationDate,
    description: o.description,
  };
}

/** Where a bootable image's init writes its marker: /run, which the init can write at boot. */
export const BOOT_MARKER = '/run/booted';

export interface BootableImage extends TestImage {
  /** What the image's /sbin/init writes to BOOT_MARKER: `<hostname> <token>`; the hostname is
   *  the instance name once the image's /etc/hostname template has been applied. */
  token: string;
  /** The marker's content in an instance called `name`. */
  marker(name: string): string;
}

export interface BootableImageOptions extends Omit<ImageOptions, 'compression'> {
  /** split: incus.tar.xz + rootfs.squashfs; unified: one tarball holding metadata and rootfs/. */
  form: 'split' | 'unified';
  /** The init's token (default: random): the same token and payload make two near-identical images. */
  token?: string;
  /** More files in the rootfs: path (relative to /) to content; for an image one file away from another. */
  extraFiles?: Record<string, string>;
}

const BUSYBOX = '/bin/busybox';
let bootableCounter = 0;

/**
 * A container image that boots: the plain test rootfs plus a static busybox (from busybox-static)
 * as /bin/busybox with sh, sleep and cat linked to it, /sbin/init a shell script that writes the
 * marker and then sleeps, and the empty mount points (proc, sys, dev, tmp, run) a container needs.
 * Its creation date lies in the past (clients may leave out versions from the future).
 */
export async function makeBootableImage(dir: string, opts: BootableImageOptions): Promise<BootableImage> {
  const info = await fsp.stat(BUSYBOX).catch(() => undefined);
  if (!info?.isFile()) {
    throw new Error(`${BUSYBOX} is missing: install busybox-static (.ci/install-system-packages.sh)`);
  }
  const token = opts.token ?? randomBytes(8).toString('hex');
  const fill: RootfsFiller = async (rootfs, o, payloadBytes) => {
    await plainRootfs(rootfs, o, payloadBytes);
    for (const [file, content] of Object.entries(opts.extraFiles ?? {})) {
      await fsp.mkdir(path.dirname(path.join(rootfs, file)), { recursive: true });
      await fsp.writeFile(path.join(rootfs, file), content);
    }
    for (const d of ['bin', 'sbin', 'proc', 'sys', 'dev', 'tmp', 'run']) {
      await fsp.mkdir(path.join(rootfs, d), { recursive: true, mode: 0o755 });
    }
    await fsp.chmod(path.join(rootfs, 'tmp'), 0o1777);
    await fsp.copyFile(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
    await fsp.chmod(path.join(rootfs, 'bin', 'busybox'), 0o755);
    for (const applet of ['sh', 'sleep', 'cat']) await fsp.symlink('busybox', path.join(rootfs, 'bin', applet));
    await fsp.writeFile(
      path.join(rootfs, 'sbin', 'init'),
      ['#!/bin/sh', `echo "$(cat /etc/hostname) ${token}" > ${BOOT_MARKER}`, 'exec sleep 2147483647', ''].join('\n'),
      { mode: 0o755 },
    );
  };
  // One minute apart, a day ago: distinct serials, and not in the future on any clock.
  const creationDate = opts.creationDate ?? Math.floor(Date.now() / 60_000) * 60 - 86400 + bootableCounter++ * 60;
  const { form, token: _token, extraFiles: _extraFiles, ...rest } = opts;
  const imageOpts = { ...rest, creationDate };
  const image =
    form === 'split'
      ? await makeImage(dir, { ...imageOpts, compression: 'xz' }, false, fill)
      : await buildUnifiedImage(dir, imageOpts, fill);
  return { ...image, token, marker: (name: string) => `${name} ${token}` };
}

/**
 * A tarball crafted entry by entry with python3's tarfile (GNU format), for archives no tar
 * command writes: `body` is Python run with `add(name, data=b"", type=tarfile.REGTYPE,
 * linkname="")` and `meta` (the bytes of `metadataText`) in scope. The tar stream goes through
 * `compressor` (a command reading stdin and writing stdout; plain tar when empty) into `out`.
 */
export async function craftTarball(
  out: string,
  body: string,
  options: { compressor?: string[]; metadataText?: string } = {},
): Promise<string> {
  const script = [
    'import io, sys, tarfile',
    'tar = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.GNU_FORMAT)',
    'def add(name, data=b"", type=tarfile.REGTYPE, linkname=""):',
    '    info = tarfile.TarInfo(name); info.type = type; info.size = len(data); info.mtime = 1700000000',
    '    info.linkname = linkname; info.mode = 0o755 if type == tarfile.DIRTYPE else 0o644',
    '    tar.addfile(info, io.BytesIO(data) if data else None)',
    'meta = sys.argv[1].encode()',
    body,
    'tar.close()',
  ].join('\n');
  const compressor = options.compressor ?? ['xz', '-T2', '-1'];
  const command =
    compressor.length === 0 ? 'python3 -c "$1" "$2" > "$3"' : `python3 -c "$1" "$2" | ${compressor.join(' ')} > "$3"`;
  await runOk('sh', ['-c', command, 'sh', script, options.metadataText ?? '', out]);
  return out;
}
