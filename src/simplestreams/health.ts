/**
 * What can be wrong with an index on its own, and what the check sub-action may mend in it. Pure.
 *
 * Each problem is a Finding; the registry layer (registry/health.ts) adds those that need the
 * files on the server. A finding is `repairable` when `repairIndex` (or the clean-up that runs
 * with every commit) fixes it without choosing for the owner which image to keep.
 */
import { isDeepStrictEqual } from 'node:util';
import { untrusted } from '../common/untrusted.js';
import { canonicalArchitecture } from './architectures.js';
import { moveAliases } from './aliases.js';
import { pruneDeltas } from './deltas.js';
import {
  buildStreamsIndex,
  holdsImages,
  isDeltaBaseStub,
  productAliases,
  type ImagesIndex,
  type SimplestreamsProduct,
} from './images-index.js';
import { withLxdItems } from './lxd.js';

export type Severity = 'error' | 'warning';

/** Every kind of problem the check reports; docs and the summary name them so. */
export type FindingKind =
  | 'unreadable-index'
  | 'alias-on-several-releases'
  | 'missing-lxd-items'
  | 'delta-without-base'
  | 'streams-index-out-of-step'
  | 'sha256sums-out-of-step'
  | 'missing-file'
  | 'wrong-size'
  | 'wrong-sha256'
  | 'linked-file'
  | 'unnamed-file'
  | 'retired-file-past-grace'
  | 'leftover-staging'
  | 'open-permissions';

export interface Finding {
  kind: FindingKind;
  severity: Severity;
  /** What it is about: an alias and architecture, a product and serial, a file, a directory. */
  subject: string;
  /** What is wrong, in a sentence. */
  detail: string;
  /** Whether `repair: true` fixes it. */
  repairable: boolean;
  /** For one not repairable: what the owner should do. */
  advice?: string;
}

/** The serial of a product's newest image (not a delta base): its creation date as YYYYMMDDhhmm. */
function newestImageSerial(product: SimplestreamsProduct): string {
  return Object.entries(product.versions ?? {})
    .filter(([, version]) => !isDeltaBaseStub(version))
    .map(([serial]) => serial)
    .reduce((newest, serial) => (serial > newest ? serial : newest), '');
}

/** An alias held by more than one product of one architecture, and the product that keeps it. */
export interface AliasConflict {
  alias: string;
  arch: string;
  /** Every product that holds it, newest first. */
  holders: string[];
  /** The holder whose newest image is the newest: where a repair leaves the alias. */
  newest: string;
}

/**
 * Aliases held by several products of one architecture, as `incus-simplestreams add --alias`
 * leaves `latest` on every release it was given to. Clients then resolve it to whichever product
 * they read last, so the alias names no one image.
 */
export function aliasConflicts(index: ImagesIndex): AliasConflict[] {
  const holders = new Map<string, { alias: string; arch: string; products: string[] }>();
  for (const [key, product] of Object.entries(index.products)) {
    if (!holdsImages(product)) continue;
    const arch = canonicalArchitecture(product.arch);
    for (const alias of productAliases(product)) {
      const id = JSON.stringify([alias, arch]);
      const entry = holders.get(id) ?? { alias, arch, products: [] };
      entry.products.push(key);
      holders.set(id, entry);
    }
  }
  const conflicts: AliasConflict[] = [];
  for (const { alias, arch, products } of holders.values()) {
    if (products.length < 2) continue;
    const ordered = [...products].sort((a, b) => {
      const [serialA, serialB] = [a, b].map((key) => newestImageSerial(index.products[key] as SimplestreamsProduct));
      return (serialB as string).localeCompare(serialA as string) || a.localeCompare(b);
    });
    conflicts.push({ alias, arch, holders: ordered, newest: ordered[0] as string });
  }
  return conflicts.sort((a, b) => a.alias.localeCompare(b.alias) || a.arch.localeCompare(b.arch));
}

/** Versions whose LXD items are missing or do not copy their Incus items (lxd-compat). */
export function versionsWithoutLxdItems(index: ImagesIndex): { product: string; serial: string }[] {
  const withItems = withLxdItems(index);
  const missing: { product: string; serial: string }[] = [];
  for (const [key, product] of Object.entries(index.products)) {
    for (const [serial, version] of Object.entries(product.versions ?? {})) {
      if (!isDeepStrictEqual(version, withItems.products[key]?.versions[serial]))
        missing.push({ product: key, serial });
    }
  }
  return missing;
}

export interface IndexCheckOptions {
  /** Whether every version should carry items for LXD clients (the lxd-compat input). */
  lxdCompat: boolean;
  /** streams/v1/index.json as parsed, or undefined when there is none or it does not parse. */
  streamsIndex: unknown;
}

/** The problems of the index itself: aliases, LXD items, deltas, and index.json beside it. */
export function indexFindings(index: ImagesIndex, options: IndexCheckOptions): Finding[] {
  const findings: Finding[] = [];
  for (const conflict of aliasConflicts(index)) {
    findings.push({
      kind: 'alias-on-several-releases',
      severity: 'error',
      subject: `${untrusted(conflict.alias)} (${untrusted(conflict.arch)})`,
      detail:
        `held by ${conflict.holders.length} releases (${conflict.holders.map(untrusted).join(', ')}): clients may ` +
        `resolve it to any of them. The newest is ${untrusted(conflict.newest)}.`,
      repairable: true,
    });
  }
  if (options.lxdCompat) {
    const missing = versionsWithoutLxdItems(index);
    if (missing.length > 0) {
      findings.push({
        kind: 'missing-lxd-items',
        severity: 'warning',
        subject: listed(missing.map(({ product, serial }) => `${untrusted(product)} ${serial}`)),
        detail: `${missing.length} version(s) have no LXD items copying their Incus ones: lxc (LXD) clients do not see them.`,
        repairable: true,
      });
    }
  }
  for (const dropped of pruneDeltas(index).droppedItems) {
    findings.push({
      kind: 'delta-without-base',
      severity: 'warning',
      subject: `${untrusted(dropped.product)} ${dropped.serial}`,
      detail: `${dropped.what}: no client can use it.`,
      repairable: true,
    });
  }
  if (!isDeepStrictEqual(withSortedProducts(options.streamsIndex), buildStreamsIndex(index))) {
    findings.push({
      kind: 'streams-index-out-of-step',
      severity: 'error',
      subject: 'streams/v1/index.json',
      detail:
        options.streamsIndex === undefined
          ? 'missing or not JSON: clients read it first, and see no image without it.'
          : 'does not list exactly the products of images.json: clients miss the others.',
      repairable: true,
    });
  }
  return findings;
}

/** index.json with its product list sorted: the order is not part of what it says. */
function withSortedProducts(streamsIndex: unknown): unknown {
  const images = (streamsIndex as { index?: { images?: { products?: unknown } } } | undefined)?.index?.images;
  if (!images || !Array.isArray(images.products)) return streamsIndex;
  const copy = JSON.parse(JSON.stringify(streamsIndex)) as { index: { images: { products: string[] } } };
  copy.index.images.products.sort();
  return copy;
}

/** A list for a finding's subject: the first few, and how many more. */
export function listed(values: string[], shown = 5): string {
  return values.slice(0, shown).join(', ') + (values.length > shown ? ` and ${values.length - shown} more` : '');
}

/**
 * The index with what a repair may mend mended: each alias held by several releases of an
 * architecture left on the newest of them, LXD items (lxd-compat), deltas whose base is gone
 * dropped. Returns no index when nothing changes, and the files no item names any more.
 */
export function repairIndex(
  index: ImagesIndex,
  options: Pick<IndexCheckOptions, 'lxdCompat'>,
): { index?: ImagesIndex; retired: string[] } {
  let next = JSON.parse(JSON.stringify(index)) as ImagesIndex;
  for (const conflict of aliasConflicts(next)) moveAliases(next, conflict.newest, [conflict.alias]);
  const pruned = pruneDeltas(next);
  next = pruned.index;
  if (options.lxdCompat) next = withLxdItems(next);
  if (isDeepStrictEqual(next, index)) return { retired: [] };
  return { index: next, retired: pruned.retired };
}
