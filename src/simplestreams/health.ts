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
import { pruneDeltas } from './deltas.js';
import {
  buildStreamsIndex,
  holdsImages,
  isDeltaBaseStub,
  productAliases,
  versionImageType,
  type ImageType,
  type ImagesIndex,
  type SimplestreamsProduct,
  type SimplestreamsVersion,
} from './images-index.js';
import { withLxdItems } from './lxd.js';
import { listImages } from './resolve.js';

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
  | 'unreadable-file'
  | 'missing-index'
  | 'linked-file'
  | 'unnamed-file'
  | 'retired-file-past-grace'
  | 'leftover-staging'
  | 'open-permissions'
  | 'fleet-drift'
  | 'bucket-missing-file'
  | 'bucket-out-of-step';

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

/** A product's newest image (not a delta base): its serial (creation date) and version. */
function newestImage(product: SimplestreamsProduct): { serial: string; version?: SimplestreamsVersion } {
  let newest: { serial: string; version?: SimplestreamsVersion } = { serial: '' };
  for (const [serial, version] of Object.entries(product.versions ?? {})) {
    if (!isDeltaBaseStub(version) && serial > newest.serial) newest = { serial, version };
  }
  return newest;
}

/** An alias held by more than one product of one architecture and type, and the product that keeps it. */
export interface AliasConflict {
  alias: string;
  arch: string;
  type: ImageType;
  /** Every product that holds it, newest first. */
  holders: string[];
  /** The holder whose newest image is the newest: where a repair leaves the alias. */
  newest: string;
}

/**
 * Aliases held by several products of one architecture and image type (clients key an alias by
 * name, type and architecture), as `incus-simplestreams add --alias` leaves `latest` on every
 * release it was given to. Clients then resolve it to whichever product they read last, so the
 * alias names no one image. Newest is by the serial, the image's creation date.
 */
export function aliasConflicts(index: ImagesIndex): AliasConflict[] {
  const holders = new Map<string, { alias: string; arch: string; type: ImageType; products: string[] }>();
  const serials = new Map<string, string>();
  for (const [key, product] of Object.entries(index.products)) {
    const newest = newestImage(product);
    if (!newest.version || !holdsImages(product)) continue;
    serials.set(key, newest.serial);
    const arch = canonicalArchitecture(product.arch);
    const type = versionImageType(newest.version);
    for (const alias of productAliases(product)) {
      const id = JSON.stringify([alias, arch, type]);
      const entry = holders.get(id) ?? { alias, arch, type, products: [] };
      entry.products.push(key);
      holders.set(id, entry);
    }
  }
  const conflicts: AliasConflict[] = [];
  for (const { alias, arch, type, products } of holders.values()) {
    if (products.length < 2) continue;
    const serial = (key: string): string => serials.get(key) ?? '';
    const ordered = [...products].sort((a, b) =>
      serial(a) === serial(b) ? (a < b ? -1 : 1) : serial(a) > serial(b) ? -1 : 1,
    );
    conflicts.push({ alias, arch, type, holders: ordered, newest: ordered[0] as string });
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
      subject: `${untrusted(conflict.alias)} (${untrusted(conflict.arch)}${conflict.type === 'virtual-machine' ? ', VM' : ''})`,
      detail:
        `held by ${conflict.holders.length} releases (${conflict.holders.map(untrusted).join(', ')}): clients may ` +
        `resolve it to any of them. The newest is ${untrusted(conflict.newest)}.`,
      repairable: true,
    });
  }
  if (options.lxdCompat) {
    for (const { product, serial } of versionsWithoutLxdItems(index)) {
      findings.push({
        kind: 'missing-lxd-items',
        severity: 'warning',
        subject: `${untrusted(product)} ${serial}`,
        detail: 'no LXD items copying its Incus ones: lxc (LXD) clients do not see it.',
        repairable: true,
      });
    }
  }
  for (const dropped of pruneDeltas(index).droppedItems) {
    findings.push({
      kind: 'delta-without-base',
      severity: 'warning',
      subject: `${untrusted(dropped.product)} ${dropped.serial}`,
      detail: `${untrusted(dropped.what)}: no client can use it.`,
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
  // Off the other holders only: a holder of another type or architecture keeps it.
  for (const conflict of aliasConflicts(next)) {
    for (const key of conflict.holders.slice(1)) {
      const product = next.products[key] as SimplestreamsProduct;
      const kept = productAliases(product).filter((alias) => alias !== conflict.alias);
      if (kept.length > 0) product.aliases = kept.join(',');
      else delete product.aliases;
    }
  }
  const pruned = pruneDeltas(next);
  next = pruned.index;
  if (options.lxdCompat) next = withLxdItems(next);
  if (isDeepStrictEqual(next, index)) return { retired: [] };
  return { index: next, retired: pruned.retired };
}

/**
 * How a mirror's index differs from the host input's server's: the releases one lists and the
 * other does not, and aliases that name another release there. A publish or a day-two change
 * reaches every server or none, so a difference means a run that ended between commits (run it
 * again) or a change made by hand on one server.
 */
export function fleetDrift(origin: ImagesIndex, mirror: ImagesIndex, originName: string): Finding[] {
  const fingerprints = (index: ImagesIndex): Set<string> =>
    new Set(listImages(index).map((image) => image.fingerprint));
  const ours = fingerprints(origin);
  const theirs = fingerprints(mirror);
  const short = (list: string[]): string =>
    list
      .slice(0, 5)
      .map((fingerprint) => fingerprint.slice(0, 12))
      .join(', ') + (list.length > 5 ? ` and ${list.length - 5} more` : '');
  const findings: Finding[] = [];
  const lacking = [...ours].filter((fingerprint) => !theirs.has(fingerprint));
  const extra = [...theirs].filter((fingerprint) => !ours.has(fingerprint));
  const advice =
    'Run the publish (or the alias or remove step) that ended part way again: it reaches every server. A change made by hand on one server has to be made on the others too.';
  if (lacking.length > 0)
    findings.push({
      kind: 'fleet-drift',
      severity: 'warning',
      subject: 'releases',
      detail: `lacks ${lacking.length} release(s) that ${originName} lists: ${short(lacking)}`,
      repairable: false,
      advice,
    });
  if (extra.length > 0)
    findings.push({
      kind: 'fleet-drift',
      severity: 'warning',
      subject: 'releases',
      detail: `lists ${extra.length} release(s) that ${originName} does not: ${short(extra)}`,
      repairable: false,
      advice,
    });
  const aliases = (index: ImagesIndex): Map<string, string> =>
    new Map(
      listImages(index).flatMap((image) =>
        image.aliases.map((alias) => [`${alias} (${image.arch})`, image.fingerprint] as const),
      ),
    );
  const ourAliases = aliases(origin);
  const theirAliases = aliases(mirror);
  const names = [...new Set([...ourAliases.keys(), ...theirAliases.keys()])].sort();
  const shown = (fingerprint: string | undefined): string => (fingerprint ? fingerprint.slice(0, 12) : 'nothing');
  const differing = names.filter((alias) => ourAliases.get(alias) !== theirAliases.get(alias));
  for (const alias of differing.slice(0, 20)) {
    findings.push({
      kind: 'fleet-drift',
      severity: 'warning',
      subject: alias,
      detail: `names ${shown(theirAliases.get(alias))} here and ${shown(ourAliases.get(alias))} on ${originName}`,
      repairable: false,
      advice,
    });
  }
  if (differing.length > 20) {
    findings.push({
      kind: 'fleet-drift',
      severity: 'warning',
      subject: `${differing.length - 20} more aliases`,
      detail: `name other releases here than on ${originName}`,
      repairable: false,
      advice,
    });
  }
  return findings;
}
