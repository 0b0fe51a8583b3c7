/**
 * What the check sub-action finds in a registry's files: the tree as server/inspect.sh and
 * server/hash.sh describe it, read as untrusted text, and the findings it gives beside the
 * index's own (simplestreams/health.ts). Pure.
 */
import { sha256Sums } from '../simplestreams/checksums.js';
import type { Finding } from '../simplestreams/health.js';
import { referencedPaths, type ImagesIndex } from '../simplestreams/images-index.js';
import { untrusted } from '../common/untrusted.js';
import { sha256Of } from './commit.js';
import { RETIRE_GRACE_SECONDS } from './layout.js';

/** An entry of images/ (find's %y type: f file, d directory, l link, …). */
export interface TreeEntry {
  type: string;
  size: number;
  mtime: number;
  name: string;
}

/** The registry's files, as server/inspect.sh describes them. */
export interface Inspection {
  /** The server's clock, in seconds. */
  now: number;
  /** Directories others than the SSH user can write, or links where a directory belongs. */
  open: string[];
  entries: TreeEntry[];
  /** Each staging tree, and whether its image lock is held, free, or a symbolic link. */
  staging: { name: string; lock: 'held' | 'free' | 'link'; mtime: number }[];
  /** Files in images/ that a commit moved there and has not made live yet (staging's `moved`). */
  moved: Set<string>;
  /** streams/v1/index.json, parsed; undefined when missing or not JSON. */
  streamsIndex: unknown;
  /** The retired list: when each file was retired (seconds), by path. */
  retired: Map<string, number>;
  /** The sha256 of images/SHA256SUMS; undefined when there is none. */
  sumsSha256: string | undefined;
}

const RETIRED_LINE = /^([0-9]+) (images\/[A-Za-z0-9._+-]+)$/;

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Reads inspect.sh's NUL-terminated records; a record of any other shape is skipped. */
export function parseInspection(output: Buffer): Inspection {
  const inspection: Inspection = {
    now: 0,
    open: [],
    entries: [],
    staging: [],
    moved: new Set(),
    streamsIndex: undefined,
    retired: new Map(),
    sumsSha256: undefined,
  };
  for (const record of output.toString('utf8').split('\0')) {
    const [kind] = record.split(' ', 1);
    const rest = record.slice((kind?.length ?? 0) + 1);
    let match: RegExpExecArray | null;
    if (kind === 'now' && /^[0-9]+$/.test(rest)) inspection.now = Number(rest);
    else if (kind === 'open' && rest !== '') inspection.open.push(rest);
    else if (kind === 'entry' && (match = /^([a-zA-Z]) ([0-9]+) ([0-9]+)(?:\.[0-9]+)? (.+)$/s.exec(rest))) {
      inspection.entries.push({
        type: match[1] as string,
        size: Number(match[2]),
        mtime: Number(match[3]),
        name: match[4] as string,
      });
    } else if (kind === 'staging' && (match = /^(held|free|link) ([0-9]+) (.+)$/s.exec(rest))) {
      inspection.staging.push({
        lock: match[1] as 'held' | 'free' | 'link',
        mtime: Number(match[2]),
        name: match[3] as string,
      });
    } else if (kind === 'moved' && /^[A-Za-z0-9._+-]+$/.test(rest)) {
      inspection.moved.add(rest);
    } else if (kind === 'sums' && /^[0-9a-f]{64}$/.test(rest)) {
      inspection.sumsSha256 = rest;
    } else if (kind === 'streams') {
      inspection.streamsIndex = parseJson(Buffer.from(rest, 'base64').toString('utf8'));
    } else if (kind === 'retired') {
      for (const line of Buffer.from(rest, 'base64').toString('utf8').split('\n')) {
        const retired = RETIRED_LINE.exec(line);
        if (retired) inspection.retired.set(retired[2] as string, Number(retired[1]));
      }
    }
  }
  return inspection;
}

/** What server/hash.sh found for the files the index names. */
export interface FileChecks {
  /** Size on disk, by path; absent for a file that is gone or behind a link. */
  sizes: Map<string, number>;
  gone: Set<string>;
  linked: Set<string>;
  /** sha256 of each file hashed in time, by path. */
  hashes: Map<string, string>;
  /** Files the SSH user cannot read. */
  unreadable: Set<string>;
  /** Files not hashed for lack of time. */
  late: string[];
}

/** Reads hash.sh's lines; lines of any other shape (a login shell's noise) are skipped. */
export function parseFileChecks(output: Buffer): FileChecks {
  const checks: FileChecks = {
    sizes: new Map(),
    gone: new Set(),
    linked: new Set(),
    hashes: new Map(),
    unreadable: new Set(),
    late: [],
  };
  for (const line of output.toString('utf8').split('\n')) {
    let match: RegExpExecArray | null;
    if ((match = /^size ([0-9]+) (\S+)$/.exec(line))) checks.sizes.set(match[2] as string, Number(match[1]));
    else if ((match = /^sha256 ([0-9a-f]{64}) (\S+)$/.exec(line)))
      checks.hashes.set(match[2] as string, match[1] as string);
    else if ((match = /^gone (\S+)$/.exec(line))) checks.gone.add(match[1] as string);
    else if ((match = /^link (\S+)$/.exec(line))) checks.linked.add(match[1] as string);
    else if ((match = /^unreadable (\S+)$/.exec(line))) checks.unreadable.add(match[1] as string);
    else if ((match = /^late (\S+)$/.exec(line))) checks.late.push(match[1] as string);
  }
  return checks;
}

/**
 * Every file the index names, with the size and sha256 it gives and the release it belongs to
 * (the newest that names it), newest release first: the order they are hashed in.
 */
export function namedFiles(index: ImagesIndex): { path: string; size: number; sha256: string; where: string }[] {
  const files = new Map<string, { path: string; size: number; sha256: string; where: string; serial: string }>();
  for (const [key, product] of Object.entries(index.products)) {
    for (const [serial, version] of Object.entries(product.versions ?? {})) {
      for (const item of Object.values(version.items)) {
        const known = files.get(item.path);
        if (!known || serial > known.serial)
          files.set(item.path, {
            path: item.path,
            size: item.size,
            sha256: item.sha256,
            where: `${untrusted(key)} ${serial}`,
            serial,
          });
      }
    }
  }
  return [...files.values()]
    .sort((a, b) => b.serial.localeCompare(a.serial) || a.path.localeCompare(b.path))
    .map(({ serial: _serial, ...file }) => file);
}

/** The findings about the files the index names: missing, behind a link, wrong size or sha256. */
export function fileFindings(index: ImagesIndex, checks: FileChecks): Finding[] {
  const findings: Finding[] = [];
  const advice =
    'Publish that release again (its files come back, same fingerprint), or withdraw it with the remove sub-action.';
  for (const file of namedFiles(index)) {
    const at = `${file.path} (${file.where})`;
    if (checks.linked.has(file.path)) {
      findings.push({
        kind: 'linked-file',
        severity: 'error',
        subject: at,
        detail: 'the path leads through a symbolic link, which the registry never makes: not checked.',
        repairable: false,
        advice: 'Replace the link with the file itself, or publish that release again.',
      });
    } else if (checks.gone.has(file.path)) {
      findings.push({
        kind: 'missing-file',
        severity: 'error',
        subject: at,
        detail: 'the index names it, but there is no such file: downloads of it fail.',
        repairable: false,
        advice,
      });
    } else if (checks.sizes.has(file.path) && checks.sizes.get(file.path) !== file.size) {
      findings.push({
        kind: 'wrong-size',
        severity: 'error',
        subject: at,
        detail: `${checks.sizes.get(file.path)} bytes on disk, the index says ${file.size}: clients refuse the download.`,
        repairable: false,
        advice,
      });
    } else if (checks.unreadable.has(file.path)) {
      findings.push({
        kind: 'unreadable-file',
        severity: 'error',
        subject: at,
        detail: 'the SSH user cannot read it, so neither can the checks; the web server may not either.',
        repairable: false,
        advice: "Give it the registry's permissions (mode 644, owned by the SSH user), or publish that release again.",
      });
    } else if (checks.hashes.has(file.path) && checks.hashes.get(file.path) !== file.sha256) {
      findings.push({
        kind: 'wrong-sha256',
        severity: 'error',
        subject: at,
        detail: `its sha256 is ${checks.hashes.get(file.path)}, the index says ${file.sha256}: clients refuse the download.`,
        repairable: false,
        advice,
      });
    }
  }
  return findings;
}

/**
 * The findings about the rest of the tree: SHA256SUMS, files no index names past the grace time,
 * staging trees left by runs that are gone, directories others can write.
 */
export function treeFindings(index: ImagesIndex, inspection: Inspection): Finding[] {
  const findings: Finding[] = [];
  for (const dir of inspection.open) {
    findings.push({
      kind: 'open-permissions',
      severity: 'error',
      subject: untrusted(dir),
      detail:
        "others than the SSH user can write it (group or others have write permission), or it is a symbolic link: the web server's user could change what is published, and publishes refuse to run.",
      repairable: false,
      advice: 'Run chmod g-w,o-w on it (see docs/server-setup.md), or replace the link with a directory.',
    });
  }
  if (sha256Of(Buffer.from(sha256Sums(index))) !== inspection.sumsSha256) {
    findings.push({
      kind: 'sha256sums-out-of-step',
      severity: 'warning',
      subject: 'images/SHA256SUMS',
      detail:
        inspection.sumsSha256 === undefined
          ? 'missing: users cannot check their downloads with sha256sum -c.'
          : 'does not list exactly the files of the index with their sha256.',
      repairable: true,
    });
  }
  const named = referencedPaths(index);
  const pastGrace = (since: number): boolean => inspection.now - since >= RETIRE_GRACE_SECONDS;
  for (const entry of inspection.entries) {
    const path = `images/${entry.name}`;
    if (named.has(path) || entry.name === 'SHA256SUMS') continue;
    const retiredAt = inspection.retired.get(path);
    if (retiredAt !== undefined) {
      if (pastGrace(retiredAt))
        findings.push({
          kind: 'retired-file-past-grace',
          severity: 'warning',
          subject: untrusted(path),
          detail: 'the index stopped naming it more than two hours ago, and it is still on disk.',
          repairable: true,
        });
    } else if (pastGrace(entry.mtime)) {
      findings.push({
        kind: 'unnamed-file',
        severity: 'warning',
        subject: entry.type === 'f' ? untrusted(path) : `${untrusted(path)} (type ${untrusted(entry.type)})`,
        detail: 'no index names it, it is older than two hours, and it takes disk space.',
        repairable: false,
        advice:
          'Nothing refers to it: remove it on the server once you know what it is (an upload copied there by hand, a release removed by hand).',
      });
    }
  }
  for (const tree of inspection.staging) {
    if (tree.lock === 'held') continue;
    const subject = untrusted(`.lxc-publish/staging/${tree.name}`);
    findings.push(
      tree.lock === 'free'
        ? {
            kind: 'leftover-staging',
            severity: 'warning',
            subject,
            detail: 'a staging tree of a run that is gone (its image lock is free) takes disk space.',
            repairable: true,
          }
        : {
            kind: 'leftover-staging',
            severity: 'warning',
            subject,
            detail: 'a staging tree whose image lock is a symbolic link, which the clean-up leaves alone.',
            repairable: false,
            advice: `Remove the tree and its lock in .lxc-publish/locks/ on the server.`,
          },
    );
  }
  return findings;
}
