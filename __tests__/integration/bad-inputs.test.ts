// "Secure by default, and a clear answer to every bad input": one table row per bad input, each run
// through the committed dist/index.js (exactly as a runner runs it) against the real loopback
// registry. For every row: the step fails (exit 1) with one ::error:: line that says what is wrong,
// which input and what to do; the registry's upload-dir and simplestreams-dir trees (and the live
// images.json) are as they were; no secret is printed except in ::add-mask:: lines. Rows marked
// `local` must fail before any connection: the shared registry is reached through a counting TCP
// proxy, and a local row must leave its count at 0 (and never open the "Connect to" log group).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { inputsFor, runBundle, runEntry, type BundleRun, type Inputs } from '../harness/action.js';
import { runOk } from '../harness/exec.js';
import {
  closedPort,
  pathWithout,
  snapshotTree,
  startSilentListener,
  type SilentListener,
} from '../harness/fixtures.js';
import { craftTarball, makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { startProxy, type TcpProxy } from '../harness/proxy.js';
import { startRegistry, type Registry } from '../harness/registry.js';

const isRoot = process.getuid?.() === 0;

/** A registry the rows run against, and the port they reach its sshd through. */
interface Target {
  registry: Registry;
  /** The port rows connect to: a counting proxy for the shared registry. */
  port: number;
  proxy?: TcpProxy;
}

interface Keys {
  /** An OpenSSH private key encrypted with `passphrase`. */
  encrypted: string;
  passphrase: string;
  /** A valid private key that no registry has in authorized_keys. */
  unknown: string;
  /** The public half of the registry's authorised key ("ssh-ed25519 AAAA… comment"). */
  publicKey: string;
  /** Another host key ("ssh-ed25519 AAAA…"), for a known-hosts line that names the wrong key. */
  otherHostKey: string;
}

interface Context {
  registry: Registry;
  port: number;
  /** A fresh directory of the row's own, for files it prepares. */
  dir: string;
  /** A valid image that is not published. */
  good: TestImage;
  keys: Keys;
}

interface Case {
  name: string;
  /** The inputs that differ from a correct step's; may prepare files or server state first. */
  inputs: (ctx: Context) => Inputs | Promise<Inputs>;
  /** What the ::error:: message must say (every pattern must match). */
  error: RegExp | RegExp[] | ((ctx: Context) => RegExp[]);
  /** A local problem: reported before any connection is made. */
  local: boolean;
  /** Run against a registry whose SSH sessions have no incus-simplestreams on their PATH. */
  registry?: 'no-tool';
  /** The failure comes after the upload: the run's own directory under upload-dir may stay, for a rerun to resume. */
  keepsUpload?: boolean;
  /** The run must end within this many seconds of processor time (the hangs were busy ones). */
  within?: number;
}

let work: string;
let shared: Target;
let noTool: Target;
let good: TestImage;
let keys: Keys;
let silent: SilentListener;
const timings: { name: string; seconds: number; cpu?: number; connections: number | undefined; local: boolean }[] = [];

// ------------------------------------------------------------------------------------------------
// File builders

async function writeTarball(dir: string, name: string, files: Record<string, string>): Promise<string> {
  const staging = await fsp.mkdtemp(path.join(dir, '.staging-'));
  for (const [file, content] of Object.entries(files)) {
    await fsp.mkdir(path.dirname(path.join(staging, file)), { recursive: true });
    await fsp.writeFile(path.join(staging, file), content);
  }
  const out = path.join(dir, name);
  await runOk('tar', ['-C', staging, '--owner=0', '--group=0', '--sort=name', '-cJf', out, ...Object.keys(files)]);
  await fsp.rm(staging, { recursive: true, force: true });
  return out;
}

let creationCounter = 0;
/** metadata.yaml as distrobuilder writes it, as a mutable document. */
function metadataDocument(): Record<string, unknown> {
  const creationDate = 1767225600 + 86400 + creationCounter++ * 60;
  return {
    architecture: 'x86_64',
    creation_date: creationDate,
    expiry_date: creationDate + 30 * 86400,
    properties: {
      architecture: 'amd64',
      description: 'Crynux bookworm amd64 (bad inputs)',
      name: 'crynux-bookworm-amd64-bad-inputs',
      os: 'Crynux',
      release: 'bookworm',
      serial: '20260102_00:00',
      variant: 'bad-inputs',
    },
    templates: {},
  };
}

/** metadata.yaml without one (possibly nested, "properties.os") field. */
function yamlWithout(field: string): string {
  const document = metadataDocument();
  const parts = field.split('.');
  let node = document;
  for (const part of parts.slice(0, -1)) node = node[part] as Record<string, unknown>;
  delete node[parts[parts.length - 1] as string];
  return toYaml(document);
}

/** An incus.tar.xz holding this metadata.yaml text (and a template, as distrobuilder writes). */
function metadataTarball(ctx: Context, yamlText: string): Promise<string> {
  return writeTarball(ctx.dir, 'incus.tar.xz', {
    'metadata.yaml': yamlText,
    'templates/hostname.tpl': '{{ instance.name }}\n',
  });
}

/** Random bytes that start with no known magic number (xz, gzip, squashfs, qcow2…). */
async function randomFile(ctx: Context, name: string): Promise<string> {
  const file = path.join(ctx.dir, name);
  await fsp.writeFile(file, Buffer.concat([Buffer.from('\0\0\0\0\0\0\0\0'), randomBytes(64 * 1024)]));
  return file;
}

/** A copy of a tree that the SSH user can read but not write. */
async function readOnlyCopy(source: string, destination: string): Promise<void> {
  await runOk('cp', ['-a', '--', source, destination]);
  if (isRoot) await runOk('chown', ['-R', 'root:root', '--', destination]);
  else await runOk('chmod', ['-R', 'a-w', '--', destination]);
}

/** The registry's host key as known_hosts writes it after the host field ("ssh-ed25519 AAAA…"). */
const serverKey = (ctx: Context): string => ctx.registry.knownHostsLine.trim().split(/\s+/).slice(-2).join(' ');

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

// ------------------------------------------------------------------------------------------------
// The table

const MISSING_FIELDS = [
  'architecture',
  'creation_date',
  'properties.os',
  'properties.release',
  'properties.variant',
  'properties.architecture',
  'properties.description',
];

const cases: Case[] = [
  // --- paths ---------------------------------------------------------------------------------------
  {
    name: 'metadata: the file does not exist',
    inputs: (ctx) => ({ metadata: path.join(ctx.dir, 'incus.tar.xz') }),
    error: [/^metadata: ".*incus\.tar\.xz" does not exist\. Check the path/],
    local: true,
  },
  {
    name: 'rootfs: the file does not exist',
    inputs: (ctx) => ({ rootfs: path.join(ctx.dir, 'rootfs.squashfs') }),
    error: [/^rootfs: ".*rootfs\.squashfs" does not exist\. Check the path/],
    local: true,
  },
  isRoot
    ? {
        // Root reads files whatever their mode, so an unreadable file cannot be made: a dangling
        // symlink (the build step wrote the link but not its target) is the file that cannot be opened.
        name: 'metadata: cannot be read (as root: a dangling symlink, since modes do not stop root)',
        inputs: async (ctx) => {
          const link = path.join(ctx.dir, 'incus.tar.xz');
          await fsp.symlink(path.join(ctx.dir, 'build', 'incus.tar.xz'), link);
          return { metadata: link };
        },
        error: [/^metadata: ".*incus\.tar\.xz" does not exist\. Check the path/],
        local: true,
      }
    : {
        name: 'metadata: cannot be read (mode 000)',
        inputs: async (ctx) => {
          const file = path.join(ctx.dir, 'incus.tar.xz');
          await fsp.copyFile(ctx.good.metadata, file);
          await fsp.chmod(file, 0o000);
          return { metadata: file };
        },
        error: [/^metadata: ".*incus\.tar\.xz" cannot be read \(permission denied\)/],
        local: true,
      },
  {
    // Also unreadable for root: stat fails with ENOTDIR.
    name: 'metadata: a path through a regular file',
    inputs: async (ctx) => {
      const file = path.join(ctx.dir, 'build');
      await fsp.writeFile(file, 'not a directory\n');
      return { metadata: path.join(file, 'incus.tar.xz') };
    },
    error: [/^metadata: ".*build\/incus\.tar\.xz" does not exist\. Check the path/],
    local: true,
  },
  {
    name: 'metadata: an empty file',
    inputs: async (ctx) => {
      const file = path.join(ctx.dir, 'incus.tar.xz');
      await fsp.writeFile(file, '');
      return { metadata: file };
    },
    error: [/^metadata: ".*incus\.tar\.xz" is empty\. Did the build step fail\?/],
    local: true,
  },
  {
    name: 'metadata: a directory',
    inputs: (ctx) => ({ metadata: ctx.dir }),
    error: [/^metadata: ".*" is not a regular file\. Give the path of the image file itself/],
    local: true,
  },
  {
    name: 'rootfs: a directory',
    inputs: (ctx) => ({ rootfs: ctx.dir }),
    error: [/^rootfs: ".*" is not a regular file\. Give the path of the image file itself/],
    local: true,
  },

  // --- wrong kinds of file -------------------------------------------------------------------------
  {
    name: 'metadata: a squashfs (metadata and rootfs swapped)',
    inputs: (ctx) => ({ metadata: ctx.good.rootfs, rootfs: ctx.good.metadata }),
    error: [
      /^metadata: ".*rootfs\.squashfs" is a squashfs file, not a metadata tarball\. Pass incus\.tar\.xz as metadata/,
    ],
    local: true,
  },
  {
    name: 'metadata: random bytes, not a tarball',
    inputs: async (ctx) => ({ metadata: await randomFile(ctx, 'incus.tar.xz') }),
    error: [/^metadata: ".*incus\.tar\.xz" is not a tarball .*Give the incus\.tar\.xz that distrobuilder wrote/],
    local: true,
  },
  {
    name: 'rootfs: random bytes',
    inputs: async (ctx) => ({ rootfs: await randomFile(ctx, 'rootfs.squashfs') }),
    error: [/^rootfs: ".*rootfs\.squashfs" is an unknown kind of file\. Give the rootfs\.squashfs/],
    local: true,
  },
  {
    name: 'metadata: LXC-format meta.tar.xz (config and templates/, no metadata.yaml)',
    inputs: async (ctx) => ({
      metadata: await writeTarball(ctx.dir, 'meta.tar.xz', {
        config: 'lxc.arch = x86_64\nlxc.uts.name = LXC_NAME\n',
        'config-user': 'lxc.include = LXC_TEMPLATE_CONFIG/common.conf\n',
        expiry: '1769817600\n',
        'templates/hostname': 'LXC_NAME\n',
      }),
    }),
    error: [/^metadata: ".*meta\.tar\.xz" holds no metadata\.yaml/, /build-incus/],
    local: true,
  },

  // --- metadata.yaml -------------------------------------------------------------------------------
  {
    name: 'metadata.yaml: not valid YAML',
    inputs: async (ctx) => ({
      metadata: await metadataTarball(ctx, 'architecture: x86_64\nproperties: [unclosed\n  os: Crynux\n'),
    }),
    error: [/^metadata: metadata\.yaml in ".*incus\.tar\.xz" is not valid YAML/],
    local: true,
  },
  {
    name: 'metadata.yaml: a scalar, not a mapping',
    inputs: async (ctx) => ({ metadata: await metadataTarball(ctx, 'just a sentence\n') }),
    error: [/^metadata: metadata\.yaml in ".*incus\.tar\.xz" is not a YAML mapping/],
    local: true,
  },
  {
    name: 'metadata.yaml: a list, not a mapping',
    inputs: async (ctx) => ({
      metadata: await metadataTarball(ctx, toYaml([metadataDocument()])),
    }),
    error: [/^metadata: metadata\.yaml in ".*incus\.tar\.xz" is not a YAML mapping/],
    local: true,
  },
  ...MISSING_FIELDS.map((field): Case => ({
    name: `metadata.yaml: no ${field}`,
    inputs: async (ctx) => ({ metadata: await metadataTarball(ctx, yamlWithout(field)) }),
    error: [new RegExp(`^metadata: metadata\\.yaml in ".*incus\\.tar\\.xz" has no (valid )?${escape(field)}\\b`)],
    local: true,
  })),
  {
    // incus-simplestreams would refuse it on the server only after the upload ("Architecture isn't
    // supported"): a registry owner needs it refused locally, with the value and names that work.
    name: 'metadata.yaml: an architecture Incus does not know (foo64)',
    inputs: async (ctx) => {
      const document = metadataDocument();
      document['architecture'] = 'foo64';
      (document['properties'] as Record<string, unknown>)['architecture'] = 'foo64';
      return { metadata: await metadataTarball(ctx, toYaml(document)) };
    },
    error: [/^metadata: metadata\.yaml in ".*incus\.tar\.xz" .*architecture "foo64"/, /x86_64|aarch64/],
    local: true,
  },

  // --- hostile image files ------------------------------------------------------------------------------
  // Before: a long metadata.yaml line hung the step for minutes (tar's output split into lines),
  // a listing of long names crashed it without an ::error line, disks referring to host files and
  // tarballs expanding to terabytes were published or converted for minutes.
  {
    name: 'metadata.yaml: one 64 MB line, in a .tar.zst of a few kB (ran for minutes)',
    inputs: async (ctx) => {
      const yaml = `${toYaml(metadataDocument())}description: ${'a'.repeat(64 * 1024 * 1024)}\n`;
      await fsp.mkdir(path.join(ctx.dir, 'long'));
      await fsp.writeFile(path.join(ctx.dir, 'long', 'metadata.yaml'), yaml);
      const out = path.join(ctx.dir, 'incus.tar.zst');
      await runOk('tar', ['-C', path.join(ctx.dir, 'long'), '--zstd', '-cf', out, 'metadata.yaml']);
      return { metadata: out };
    },
    error: [/^metadata: metadata\.yaml in ".*incus\.tar\.zst" is \d+ bytes; the limit is 1 MiB/],
    local: true,
    within: 10,
  },
  {
    name: 'metadata: a unified tarball of 150k entries with 3.9 kB names and no rootfs (crashed without ::error)',
    inputs: async (ctx) => ({
      metadata: await craftTarball(
        path.join(ctx.dir, 'unified.tar.zst'),
        'add("metadata.yaml", meta)\nfor i in range(150000): add("x" * 3890 + "%07d" % i)',
        { compressor: ['zstd', '-q', '-1', '-T2'], metadataText: toYaml(metadataDocument()) },
      ),
      rootfs: '',
    }),
    error: [/^metadata: ".*unified\.tar\.zst" (expands more than|holds metadata\.yaml but neither rootfs)/],
    local: true,
    within: 10,
  },
  {
    name: 'metadata: ./metadata.yaml only (the 6.0 server reads "metadata.yaml" exactly)',
    inputs: async (ctx) => ({
      metadata: await craftTarball(path.join(ctx.dir, 'incus.tar.xz'), 'add("./metadata.yaml", meta)', {
        metadataText: toYaml(metadataDocument()),
      }),
    }),
    error: [/^metadata: ".*incus\.tar\.xz" holds "\.\/metadata\.yaml" but no member named exactly metadata\.yaml/],
    local: true,
  },
  {
    name: 'metadata: metadata.yaml is a symlink in the tarball',
    inputs: async (ctx) => ({
      metadata: await craftTarball(
        path.join(ctx.dir, 'incus.tar.xz'),
        'add("metadata.yaml", type=tarfile.SYMTYPE, linkname="/etc/passwd")',
      ),
    }),
    error: [/^metadata: metadata\.yaml in ".*incus\.tar\.xz" is a symbolic link, not a file/],
    local: true,
  },
  ...[
    ['01700100000 (octal to the server)', '01700100000', /creation_date "01700100000", which is not a plain decimal/],
    ['1e20', '1e20', /creation_date "1e20", which is not a plain decimal/],
    ['in the year 2100', '4102444800', /creation_date 4102444800 .*not between 2000-01-01 and a day from now/],
    ['0', '0', /creation_date "0", which is not a plain decimal/],
    ['negative', '-1', /creation_date "-1", which is not a plain decimal/],
  ].map(([label, value, message]): Case => ({
    name: `metadata.yaml: creation_date ${label as string}`,
    inputs: async (ctx) => ({
      metadata: await metadataTarball(
        ctx,
        toYaml(metadataDocument()).replace(/^creation_date: .*$/m, `creation_date: ${value as string}`),
      ),
    }),
    error: [new RegExp(`^metadata: metadata\\.yaml in ".*incus\\.tar\\.xz" has ${(message as RegExp).source}`)],
    local: true,
  })),
  {
    name: 'metadata.yaml: architecture aarch64 with properties.architecture amd64',
    inputs: async (ctx) => {
      const document = metadataDocument();
      document['architecture'] = 'aarch64';
      return { metadata: await metadataTarball(ctx, toYaml(document)) };
    },
    error: [/has architecture "aarch64" \(aarch64\) but properties\.architecture "amd64" \(x86_64\)/],
    local: true,
  },
  ...[
    ['os', 'Crynux:evil', '":"'],
    ['release', 'bookworm,trixie', '","'],
    ['variant', 'a/b', '"/"'],
    ['architecture', 'amd 64', 'a blank'],
  ].map(([field, value, what]): Case => ({
    name: `metadata.yaml: properties.${field as string} "${value as string}"`,
    inputs: async (ctx) => {
      const document = metadataDocument();
      (document['properties'] as Record<string, unknown>)[field as string] = value;
      return { metadata: await metadataTarball(ctx, toYaml(document)) };
    },
    error: [
      new RegExp(`has properties\\.${field as string} ".*", which contains ${what as string}\\.`),
      /product key \(os:release:variant:architecture\) and the default alias/,
    ],
    local: true,
  })),
  {
    name: 'metadata.yaml: an alias bomb',
    inputs: async (ctx) => {
      const lines = ['a: &a [x, x, x, x, x, x, x, x, x]'];
      for (let i = 1; i < 8; i++)
        lines.push(
          `a${i}: &a${i} [${Array(9)
            .fill(`*a${i === 1 ? '' : i - 1}`)
            .join(', ')}]`,
        );
      return { metadata: await metadataTarball(ctx, `${toYaml(metadataDocument())}${lines.join('\n')}\n`) };
    },
    error: [/^metadata: metadata\.yaml in ".*incus\.tar\.xz" is not valid YAML/],
    local: true,
    within: 10,
  },
  {
    name: 'metadata.yaml: a duplicate key',
    inputs: async (ctx) => ({
      metadata: await metadataTarball(ctx, `${toYaml(metadataDocument())}architecture: aarch64\n`),
    }),
    error: [/^metadata: metadata\.yaml in ".*incus\.tar\.xz" is not valid YAML/],
    local: true,
  },
  {
    name: 'rootfs: a qcow2 whose backing file is /etc/shadow',
    inputs: async (ctx) => {
      const disk = path.join(ctx.dir, 'disk.qcow2');
      await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', '/etc/shadow', '-F', 'raw', disk]);
      return { rootfs: disk };
    },
    error: [
      /^rootfs: ".*disk\.qcow2" is a qcow2 disk with a backing file "\/etc\/shadow": it refers to a file outside itself/,
    ],
    local: true,
  },
  {
    name: 'rootfs: a qcow2 whose external data file is a host file',
    inputs: async (ctx) => {
      const disk = path.join(ctx.dir, 'disk.qcow2');
      await runOk('qemu-img', [
        'create',
        '-q',
        '-f',
        'qcow2',
        '-o',
        'data_file=/etc/hostname,data_file_raw=on',
        disk,
        '1M',
      ]);
      return { rootfs: disk };
    },
    error: [/^rootfs: ".*disk\.qcow2" is a qcow2 disk with an external data file/, /standalone/],
    local: true,
  },
  {
    name: 'rootfs: a rootfs.tar.xz of a few hundred bytes holding a 64 GiB sparse file',
    inputs: async (ctx) => {
      const tree = path.join(ctx.dir, 'tree');
      await fsp.mkdir(tree);
      await runOk('truncate', ['-s', '64G', path.join(tree, 'big')]);
      const out = path.join(ctx.dir, 'rootfs.tar.xz');
      await runOk('tar', ['-C', tree, '--sparse', '-cJf', out, 'big']);
      return { rootfs: out, 'convert-rootfs': 'always' };
    },
    error: [/^rootfs: ".*rootfs\.tar\.xz" holds more than 16384 MiB of file content \(max-rootfs-size; "big" alone/],
    local: true,
    within: 10,
  },
  {
    name: 'rootfs: a rootfs tarball with more entries than max-rootfs-entries',
    inputs: async (ctx) => ({
      rootfs: await craftTarball(path.join(ctx.dir, 'rootfs.tar.xz'), 'for i in range(5000): add("f%05d" % i)'),
      'max-rootfs-entries': '1000',
      'convert-rootfs': 'always',
    }),
    error: [/^rootfs: ".*rootfs\.tar\.xz" holds more than 1000 entries \(max-rootfs-entries\)/],
    local: true,
  },
  {
    name: 'rootfs: a rootfs tarball whose one entry is a hard link to ../../../etc/passwd',
    inputs: async (ctx) => ({
      rootfs: await craftTarball(
        path.join(ctx.dir, 'rootfs.tar.xz'),
        'add("passwd", type=tarfile.LNKTYPE, linkname="../../../etc/passwd")',
      ),
      'convert-rootfs': 'always',
    }),
    error: [/^rootfs: ".*rootfs\.tar\.xz" holds the entry "passwd", a hard link to "\.\.\/\.\.\/\.\.\/etc\/passwd"/],
    local: true,
  },
  {
    name: 'rootfs: a FIFO (nothing writes it)',
    inputs: async (ctx) => {
      const fifo = path.join(ctx.dir, 'rootfs.squashfs');
      await runOk('mkfifo', [fifo]);
      return { rootfs: fifo };
    },
    error: [/^rootfs: ".*rootfs\.squashfs" is not a regular file/],
    local: true,
    within: 10,
  },
  {
    name: 'rootfs: /dev/zero',
    inputs: () => ({ rootfs: '/dev/zero' }),
    error: [/^rootfs: "\/dev\/zero" is not a regular file/],
    local: true,
    within: 10,
  },
  {
    name: 'metadata: /proc/self/environ',
    inputs: () => ({ metadata: '/proc/self/environ' }),
    error: [/^metadata: "\/proc\/self\/environ" is empty/],
    local: true,
  },
  {
    name: 'rootfs: a /sys file',
    inputs: () => ({ rootfs: '/sys/kernel/mm/transparent_hugepage/enabled' }),
    error: [/^rootfs: ".*" (is an unknown kind of file|does not exist)/],
    local: true,
  },

  // --- other inputs ------------------------------------------------------------------------------------
  ...['0', '70000', '22a'].map((port): Case => ({
    name: `port: "${port}"`,
    inputs: () => ({ port }),
    error: [new RegExp(`^port: "${port}" is not a TCP port number \\(1-65535\\); leave it empty for 22`)],
    local: true,
  })),
  {
    name: 'host: user@host',
    inputs: (ctx) => ({ host: `${ctx.registry.username}@127.0.0.1` }),
    error: [/^host: ".*@127\.0\.0\.1" contains "@"\. Put the user name in the username input/],
    local: true,
  },
  {
    name: 'host: an IPv4 address with ":port"',
    inputs: (ctx) => ({ host: `127.0.0.1:${ctx.port}` }),
    error: [/^host: "127\.0\.0\.1:\d+" /, /port input/],
    local: true,
  },
  {
    name: 'host: a host name with ":port"',
    inputs: (ctx) => ({ host: `localhost:${ctx.port}` }),
    error: [/^host: "localhost:\d+" is not a host name or IP address/, /port input/],
    local: true,
  },
  {
    name: 'host: a URL',
    inputs: (ctx) => ({ host: `ssh://127.0.0.1:${ctx.port}` }),
    error: [/^host: "ssh:\/\/127\.0\.0\.1:\d+" is a URL\. Give only the host name or IP address/],
    local: true,
  },
  {
    name: 'host: a terminal escape sequence',
    inputs: () => ({ host: '127.0.0.1\u001b[2J' }),
    error: [/^host: .* is not a host name or IP address/],
    local: true,
  },
  {
    name: 'username: "$(id)"',
    inputs: () => ({ username: '$(id)' }),
    error: [/^username: "\$\(id\)" is not a valid user name on the server/],
    local: true,
  },
  {
    name: 'upload-dir: a relative path',
    inputs: () => ({ 'upload-dir': 'lxc/uploads' }),
    error: [/^upload-dir: "lxc\/uploads" is not an absolute path on the server; start it with "\/"/],
    local: true,
  },
  {
    name: 'simplestreams-dir: "/"',
    inputs: () => ({ 'simplestreams-dir': '/' }),
    error: [/^simplestreams-dir: "\/" cannot be used; give the registry's own directory/],
    local: true,
  },
  {
    name: 'upload-dir: a control character (a newline from a YAML block)',
    inputs: (ctx) => ({ 'upload-dir': `${ctx.registry.uploadDir}\n/tmp` }),
    error: [/^upload-dir: the path contains control characters/],
    local: true,
  },
  {
    name: 'lock-timeout: "ten minutes"',
    inputs: () => ({ 'lock-timeout': 'ten minutes' }),
    error: [/^lock-timeout: "ten minutes" is not a whole number from 1 to \d+/],
    local: true,
  },
  {
    name: 'retries: "-1"',
    inputs: () => ({ retries: '-1' }),
    error: [/^retries: "-1" is not a whole number from 0 to \d+/],
    local: true,
  },
  {
    name: 'replace: "yes"',
    inputs: () => ({ replace: 'yes' }),
    error: [/^replace: "yes" is not a boolean; use true or false/],
    local: true,
  },
  {
    name: 'convert-rootfs: "sometimes"',
    inputs: () => ({ 'convert-rootfs': 'sometimes' }),
    error: [/^convert-rootfs: "sometimes" is not one of auto, always, never/],
    local: true,
  },
  {
    name: 'connect-timeout: "soon"',
    inputs: () => ({ 'connect-timeout': 'soon' }),
    error: [/^connect-timeout: "soon" is not a whole number/],
    local: true,
  },
  {
    name: 'strict-host-key: "maybe"',
    inputs: () => ({ 'strict-host-key': 'maybe' }),
    error: [/^strict-host-key: "maybe" is not a boolean; use true or false/],
    local: true,
  },
  {
    name: 'host-fingerprint: an MD5 fingerprint',
    inputs: () => ({ 'host-fingerprint': 'MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48' }),
    error: [/^host-fingerprint: "MD5:16:27:.*" is not a SHA256 host key fingerprint\. .*ssh-keygen -lf/],
    local: true,
  },
  {
    name: 'known-hosts: a line without its key',
    inputs: (ctx) => ({ 'host-fingerprint': '', 'known-hosts': `[127.0.0.1]:${ctx.port} ssh-ed25519` }),
    error: [/^known-hosts: line 1 cannot be read .*ssh-keyscan/],
    local: true,
  },

  {
    name: 'host: empty (the secret is not set, or not passed to a fork)',
    inputs: () => ({ host: '' }),
    error: [
      /^host: empty\. It usually comes from a secret \(host: \$\{\{ secrets\.REGISTRY_HOST \}\}\).*fork.*Define REGISTRY_HOST/,
    ],
    local: true,
  },
  {
    name: 'username: empty (the secret is not set)',
    inputs: () => ({ username: ' ' }),
    error: [/^username: empty\. It usually comes from a secret .*REGISTRY_USER.*environment/],
    local: true,
  },

  // --- keys --------------------------------------------------------------------------------------------
  {
    name: 'ssh-key: empty (the secret is not set)',
    inputs: () => ({ 'ssh-key': '' }),
    error: [/^ssh-key: no private key given\. Set it from a secret/],
    local: true,
  },
  {
    name: 'ssh-key: the public key',
    inputs: (ctx) => ({ 'ssh-key': ctx.keys.publicKey }),
    error: [/^ssh-key: this is a public key\. Give the private key/],
    local: true,
  },
  {
    name: 'ssh-key: cut short (no END line)',
    inputs: (ctx) => {
      const lines = ctx.registry.privateKey.trim().split('\n');
      return { 'ssh-key': lines.slice(0, Math.ceil(lines.length / 2)).join('\n') };
    },
    error: [/^ssh-key: the key is cut short \(no "-----END" line\)/],
    local: true,
  },
  {
    name: 'ssh-key: lines lost in the middle (END line kept)',
    inputs: (ctx) => {
      const lines = ctx.registry.privateKey.trim().split('\n');
      return { 'ssh-key': [...lines.slice(0, 2), ...lines.slice(-1)].join('\n') };
    },
    error: [/^ssh-key: the key cannot be read .*Paste the whole private key file/],
    local: true,
  },
  {
    name: 'ssh-key: garbage',
    inputs: () => ({ 'ssh-key': 'my-registry-password-Tr0ub4dor&3' }),
    error: [/^ssh-key: this is not a private key\. Paste the whole key file/],
    local: true,
  },
  {
    name: 'ssh-key: encrypted, without ssh-key-passphrase',
    inputs: (ctx) => ({ 'ssh-key': ctx.keys.encrypted, 'ssh-key-passphrase': '' }),
    error: [/^ssh-key-passphrase: the key is encrypted\. Give its passphrase in ssh-key-passphrase/],
    local: true,
  },
  {
    name: 'ssh-key-passphrase: wrong',
    inputs: (ctx) => ({ 'ssh-key': ctx.keys.encrypted, 'ssh-key-passphrase': 'wrong-horse-battery-staple-17' }),
    error: [/^ssh-key-passphrase: the passphrase does not open the key/],
    local: true,
  },

  // --- host keys ---------------------------------------------------------------------------------------
  {
    name: 'host-fingerprint: does not match the server',
    inputs: () => ({ 'host-fingerprint': `SHA256:${'A'.repeat(43)}` }),
    error: (ctx) => [
      new RegExp(
        `^Host key verification failed for 127\\.0\\.0\\.1:${ctx.port}: the server presented ssh-ed25519 ` +
          `${escape(ctx.registry.hostKeyFingerprint)}, which host-fingerprint does not allow\\. Nothing was uploaded`,
      ),
    ],
    local: false,
  },
  {
    name: 'known-hosts: another key for this host',
    inputs: (ctx) => ({ 'host-fingerprint': '', 'known-hosts': `[127.0.0.1]:${ctx.port} ${ctx.keys.otherHostKey}` }),
    error: (ctx) => [
      new RegExp(
        `^Host key verification failed for 127\\.0\\.0\\.1:${ctx.port}: the server presented ssh-ed25519 ` +
          `${escape(ctx.registry.hostKeyFingerprint)}, which known-hosts does not allow`,
      ),
    ],
    local: false,
  },
  // A pin input that is set but allows no key for this host and port would connect unverified:
  // each is refused before any connection, saying why.
  {
    name: "known-hosts: only the server's own key, @revoked",
    inputs: (ctx) => ({
      'host-fingerprint': '',
      'known-hosts': `@revoked [127.0.0.1]:${ctx.port} ${serverKey(ctx)}`,
    }),
    error: (ctx) => [
      new RegExp(
        `^known-hosts gives no key for \\[127\\.0\\.0\\.1\\]:${ctx.port}: its lines for .* hold only revoked keys ` +
          '\\(@revoked\\), and a revoked key is never accepted',
      ),
    ],
    local: true,
  },
  {
    name: "known-hosts: only the server's own key, strict-host-key true, @revoked",
    inputs: (ctx) => ({
      'host-fingerprint': '',
      'known-hosts': `@revoked [127.0.0.1]:${ctx.port} ${serverKey(ctx)}`,
      'strict-host-key': 'true',
    }),
    error: [/^known-hosts gives no key for .*only revoked keys/],
    local: true,
  },
  {
    name: "known-hosts: the server's key, but for another host name",
    inputs: (ctx) => ({
      'host-fingerprint': '',
      'known-hosts': `[registry.example.com]:${ctx.port} ${serverKey(ctx)}`,
    }),
    error: (ctx) => [
      new RegExp(
        `^known-hosts gives no key for \\[127\\.0\\.0\\.1\\]:${ctx.port}: it has lines but none for ` +
          `\\[127\\.0\\.0\\.1\\]:${ctx.port}; it lists \\[registry\\.example\\.com\\]:${ctx.port}\\.`,
      ),
    ],
    local: true,
  },
  {
    name: 'known-hosts: only a @cert-authority line',
    inputs: (ctx) => ({
      'host-fingerprint': '',
      'known-hosts': `@cert-authority [127.0.0.1]:${ctx.port} ${serverKey(ctx)}`,
    }),
    error: [
      /^known-hosts gives no key for .*@cert-authority line: host certificates are not supported, pin the host key with host-fingerprint or a plain known-hosts line/,
    ],
    local: true,
  },
  {
    name: 'strict-host-key: true, with no pin',
    inputs: () => ({ 'host-fingerprint': '', 'known-hosts': '', 'strict-host-key': 'true' }),
    error: (ctx) => [/strict-host-key/, new RegExp(`host-fingerprint: ${escape(ctx.registry.hostKeyFingerprint)}`)],
    local: false,
  },
  {
    name: 'no pin at all (strict-host-key left at its default)',
    inputs: () => ({ 'host-fingerprint': '', 'known-hosts': '' }),
    error: (ctx) => [
      /^The host key of 127\.0\.0\.1:\d+ is not pinned: neither host-fingerprint nor known-hosts is set/,
      new RegExp(`add "host-fingerprint: ${escape(ctx.registry.hostKeyFingerprint)}" to the step`),
      /Nothing was sent to it/,
    ],
    local: false,
  },
  {
    // The runner passes every with: key on and only warns about one the action does not declare:
    // with this typo the pin would be ignored and, unrefused, the host key never checked.
    name: 'host-fingerprnt: a misspelt host-fingerprint',
    inputs: (ctx) => ({ 'host-fingerprint': '', 'host-fingerprnt': ctx.registry.hostKeyFingerprint }),
    error: [/^host-fingerprnt is not an input of this action: did you mean host-fingerprint\?/],
    local: true,
  },
  {
    name: 'two unknown inputs, one near a declared name',
    inputs: () => ({ 'keep-version': '3', colour: 'blue' }),
    error: [/^These are not inputs of this action: colour, keep-version \(did you mean keep-versions\?\)\./],
    local: true,
  },

  // --- network -----------------------------------------------------------------------------------------
  {
    name: 'port: nothing listens (connection refused)',
    inputs: async () => ({ port: String(await closedPort()) }),
    error: [/^Connection to 127\.0\.0\.1:\d+ was refused\. Check the host and port inputs/],
    local: false,
  },
  {
    name: 'port: a server that accepts TCP and never answers (connect-timeout 2)',
    inputs: () => ({ port: String(silent.port), 'connect-timeout': '2' }),
    error: [/^Connecting to 127\.0\.0\.1:\d+ timed out\. Check the host and port inputs/],
    local: false,
    within: 10,
  },
  {
    name: 'ssh-key: a valid key the server does not know',
    inputs: (ctx) => ({ 'ssh-key': ctx.keys.unknown }),
    error: (ctx) => [
      new RegExp(`^The server 127\\.0\\.0\\.1:${ctx.port} refused the key for user "${ctx.registry.username}"`),
      // the key offered, as ssh-keygen -lf prints it for the key's public half
      /\(the key offered: ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}\)/,
      /authorized_keys/,
    ],
    local: false,
  },

  // --- server state ------------------------------------------------------------------------------------
  {
    name: 'server: incus-simplestreams is not installed',
    registry: 'no-tool',
    inputs: () => ({}),
    error: [/incus-simplestreams/, /not installed|not found/, /incus-extra/],
    local: false,
    keepsUpload: true,
  },
  {
    name: 'upload-dir: not writable by the SSH user',
    inputs: async (ctx) => {
      const dir = path.join(ctx.registry.root, 'srv', 'lxc', 'root-owned-uploads');
      await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
      if (!isRoot) await fsp.chmod(dir, 0o555);
      return { 'upload-dir': dir };
    },
    error: [/root-owned-uploads/, /Permission denied|cannot write/i, /upload-dir/],
    local: false,
  },
  {
    name: 'simplestreams-dir: not writable by the SSH user',
    inputs: async (ctx) => {
      const dir = path.join(ctx.registry.root, 'srv', 'lxc', 'root-owned-simplestreams');
      await removeTree(dir);
      await readOnlyCopy(ctx.registry.simplestreamsDir, dir);
      return { 'simplestreams-dir': dir };
    },
    error: [/root-owned-simplestreams/, /Permission denied|cannot write/i, /simplestreams-dir/],
    local: false,
    keepsUpload: true,
  },
  {
    name: 'simplestreams-dir: does not exist on the server',
    inputs: (ctx) => ({ 'simplestreams-dir': path.join(ctx.registry.root, 'srv', 'lxc', 'no-such-dir') }),
    error: [/^simplestreams-dir: .*no-such-dir does not exist on the server/],
    local: false,
  },

  // --- hostile aliases (refused locally) -------------------------------------------------------------
  {
    name: 'aliases: a blank inside ("a b")',
    inputs: () => ({ aliases: 'crynux-node:v2.6.0\na b' }),
    error: [/^aliases: "a b" is not a valid image alias/],
    local: true,
  },
  {
    // A newline separates aliases (one per line), so it cannot be inside one: a carriage return
    // (a workflow edited on Windows, or a pasted "\r") is the line-break character that can.
    name: 'aliases: a carriage return inside',
    inputs: () => ({ aliases: 'crynux\rnode' }),
    error: [/^aliases: "crynux\?node" is not a valid image alias/],
    local: true,
  },
  {
    // Environment variables cannot hold NUL, so no runner can pass one: ESC is the control
    // character that matters (terminal escape sequences in the log).
    name: 'aliases: a control character (ESC) inside',
    inputs: () => ({ aliases: 'crynux-node\u001b[31m' }),
    error: [/^aliases: "crynux-node\?\[31m" is not a valid image alias/],
    local: true,
  },
];

async function removeTree(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true });
}

// ------------------------------------------------------------------------------------------------
// Checks

/** The ::error:: lines of a run, decoded as @actions/core escapes them. */
function errorMessages(stdout: string): { raw: string; message: string }[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('::error'))
    .map((raw) => ({
      raw,
      message: raw
        .replace(/^::error[^:]*::/, '')
        .replace(/%0D/g, '\r')
        .replace(/%0A/g, '\n')
        .replace(/%25/g, '%'),
    }));
}

/** Secret values of the inputs: the key's base64 lines and the passphrase. */
function secretsOf(inputs: Inputs): string[] {
  const secrets = (inputs['ssh-key'] ?? '')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length >= 16 && !line.startsWith('-----'));
  if (inputs['ssh-key-passphrase']) secrets.push(inputs['ssh-key-passphrase']);
  return secrets;
}

/** Secrets that appear in the output other than on ::add-mask:: lines. */
function leakedSecrets(inputs: Inputs, result: BundleRun): string[] {
  const printed = `${result.stdout}\n${result.stderr}`
    .split('\n')
    .filter((line) => !line.startsWith('::add-mask::'))
    .join('\n');
  return secretsOf(inputs).filter((secret) => printed.includes(secret));
}

const imagesJson = (registry: Registry): string => path.join(registry.simplestreamsDir, 'streams', 'v1', 'images.json');

// ------------------------------------------------------------------------------------------------
// Setup

/** Starts a registry and publishes one image to it through the bundle, so there is a live index to protect. */
async function liveRegistry(name: string, options: Parameters<typeof startRegistry>[0] = {}): Promise<Registry> {
  const registry = await startRegistry(options);
  const dir = path.join(work, `published-${name}`);
  await fsp.mkdir(dir);
  const image = await makeSplitContainerImage(dir, { os: 'Crynux', release: 'bookworm', variant: `live-${name}` });
  const result = await runBundle(inputsFor(registry, image, { aliases: `bad-inputs-${name}:live` }));
  if (result.code !== 0) throw new Error(`publishing the first image failed:\n${result.stdout}${result.stderr}`);
  return registry;
}

async function keygen(file: string, passphrase = ''): Promise<string> {
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', 'bad-inputs', '-f', file]);
  return fsp.readFile(file, 'utf8');
}

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-bad-inputs-'));
  await fsp.chmod(work, 0o755);
  // The no-tool registry listens on a second port whose sessions get a PATH without
  // incus-simplestreams (sshd's SetEnv overrides its default PATH): the first image is published
  // through the normal port, the row runs through the other. Nothing on the machine changes.
  const bin = await pathWithout(path.join(work, 'bin-without-incus-simplestreams'), ['incus-simplestreams']);
  const noToolPort = await closedPort();
  const keyDir = path.join(work, 'keys');
  await fsp.mkdir(keyDir);
  const passphrase = 'correct-horse-battery-staple-42';
  const [sharedRegistry, noToolRegistry, encrypted, unknown, otherHost] = await Promise.all([
    liveRegistry('shared'),
    liveRegistry('no-tool', {
      sshExtraConfig: `Port ${noToolPort}\nMatch LocalPort ${noToolPort}\n  SetEnv PATH=${bin}`,
    }),
    keygen(path.join(keyDir, 'encrypted'), passphrase),
    keygen(path.join(keyDir, 'unknown')),
    keygen(path.join(keyDir, 'other-host')).then(() => fsp.readFile(path.join(keyDir, 'other-host.pub'), 'utf8')),
  ]);
  const proxy = await startProxy({ targetPort: sharedRegistry.sshPort });
  shared = { registry: sharedRegistry, port: proxy.port, proxy };
  noTool = { registry: noToolRegistry, port: noToolPort };
  silent = await startSilentListener();
  keys = {
    encrypted,
    passphrase,
    unknown,
    publicKey: (await fsp.readFile(`${sharedRegistry.privateKeyFile}.pub`, 'utf8')).trim(),
    otherHostKey: otherHost.trim().split(/\s+/).slice(0, 2).join(' '),
  };
  const goodDir = path.join(work, 'good');
  await fsp.mkdir(goodDir);
  good = await makeSplitContainerImage(goodDir, { os: 'Crynux', release: 'bookworm', variant: 'unpublished' });
});

afterAll(async () => {
  const rows = timings.map(
    (t) =>
      `${t.seconds.toFixed(2).padStart(6)} s  ${t.local ? 'local ' : 'remote'}  ` +
      `${t.connections === undefined ? '-' : t.connections} conn  ${t.name}` +
      (t.cpu === undefined ? '' : ` (${t.cpu.toFixed(2)} s of processor time)`),
  );
  if (rows.length > 0) console.log(`bad-inputs: ${rows.length} cases (bundle run time)\n${rows.join('\n')}`);
  await Promise.all([shared?.proxy?.close(), silent?.close()]);
  // Not root: the read-only copies were made so with chmod; make them removable again.
  if (!isRoot && shared) await runOk('chmod', ['-R', 'u+w', '--', path.join(shared.registry.root, 'srv')]);
  await Promise.all([shared?.registry.stop(), noTool?.registry.stop()]);
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------------------------

describe('a clear answer to every bad input', () => {
  it('has at least 30 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  it.each(cases)('$name', async (row) => {
    const target = row.registry === 'no-tool' ? noTool : shared;
    const dir = await fsp.mkdtemp(path.join(work, 'case-'));
    const ctx: Context = { registry: target.registry, port: target.port, dir, good, keys };
    const inputs: Inputs = {
      ...inputsFor(target.registry, good, { port: String(target.port) }),
      ...(await row.inputs(ctx)),
    };
    const srv = path.join(target.registry.root, 'srv');
    const treeBefore = await snapshotTree(srv);
    const indexBefore = await fsp.readFile(imagesJson(target.registry), 'utf8');
    const connectionsBefore = target.proxy?.connections;

    const started = Date.now();
    // A row with a time limit is held to the processor time the run used (its children's
    // included), which another job on the machine does not stretch as it stretches the clock.
    const cpuFile = path.join(ctx.dir, 'cpu-seconds');
    const result = await runEntry({
      entry: 'dist/index.js',
      inputs,
      ...(row.within !== undefined ? { prefix: ['/usr/bin/time', '-f', '%U %S', '-o', cpuFile] } : {}),
    });
    const seconds = (Date.now() - started) / 1000;
    const cpuSeconds =
      row.within === undefined
        ? 0
        : // The last line: "USER SYSTEM" (time says above it that the command failed).
          ((await fsp.readFile(cpuFile, 'utf8')).trim().split('\n').pop() ?? '')
            .split(' ')
            .reduce((sum, value) => sum + Number(value), 0);
    const throughProxy = target.proxy !== undefined && inputs['port'] === String(target.proxy.port);
    const connections =
      throughProxy && connectionsBefore !== undefined ? target.proxy!.connections - connectionsBefore : undefined;
    timings.push({
      name: row.name,
      seconds,
      ...(row.within !== undefined ? { cpu: cpuSeconds } : {}),
      connections,
      local: row.local,
    });

    // The registry's trees after the run. A row failing after its upload may keep one new
    // directory of its own directly under upload-dir, for a rerun to resume; it is removed here.
    const uploads = path.relative(srv, target.registry.uploadDir);
    let treeAfter = await snapshotTree(srv);
    const indexAfter = await fsp.readFile(imagesJson(target.registry), 'utf8');
    const kept = row.keepsUpload
      ? new RegExp(`^${escape(uploads)}/([0-9a-f]{64})/ dir `).exec(
          treeAfter.find((line) => !treeBefore.includes(line)) ?? '',
        )?.[1]
      : undefined;
    if (kept) {
      treeAfter = treeAfter.filter((line) => !line.startsWith(`${uploads}/${kept}/`));
      await removeTree(path.join(target.registry.uploadDir, kept));
    }

    // Every check at once, so that a failing row shows all that is wrong with it.
    const errors = errorMessages(result.stdout);
    const message = errors.map((error) => error.message).join('\n---\n');
    const patterns = typeof row.error === 'function' ? row.error(ctx) : [row.error].flat();
    const unmatched = patterns.filter((pattern) => !pattern.test(message)).map(String);
    const masks = result.stdout.split('\n').filter((line) => line.startsWith('::add-mask::'));
    expect({
      message,
      // The step fails, with one error that says what failed, which input, and what to do.
      exitCode: result.code,
      errorLines: errors.length,
      messageMismatch: unmatched.length === 0 ? null : { message, unmatched },
      // No raw control character reaches the log (terminal escapes).
      rawControlCharacters: errors.some((error) => /[\u0000-\u0008\u000b-\u001f\u007f]/.test(error.raw)),
      outputs: result.outputs,
      // No secret is printed except to register it as one; each is registered, whatever failed.
      leakedSecrets: leakedSecrets(inputs, result),
      unmaskedSecrets: secretsOf(inputs).filter((secret) => !masks.includes(`::add-mask::${secret}`)),
      // upload-dir, simplestreams-dir and the live index are untouched.
      addedToRegistry: treeAfter.filter((line) => !treeBefore.includes(line)),
      removedFromRegistry: treeBefore.filter((line) => !treeAfter.includes(line)),
      liveIndexChanged: indexAfter !== indexBefore,
      // A local problem is reported before any connection.
      connectionsBeforeLocalError: row.local ? (connections ?? 0) : 0,
      connectPhaseBeforeLocalError: row.local && result.stdout.includes('::group::Connect to'),
      tooSlow: row.within !== undefined && !(cpuSeconds < row.within),
    }).toEqual({
      message,
      exitCode: 1,
      errorLines: 1,
      messageMismatch: null,
      rawControlCharacters: false,
      outputs: {},
      leakedSecrets: [],
      unmaskedSecrets: [],
      addedToRegistry: [],
      removedFromRegistry: [],
      liveIndexChanged: false,
      connectionsBeforeLocalError: 0,
      connectPhaseBeforeLocalError: false,
      tooSlow: false,
    });
  });
});
