/**
 * Finding a published image by what a user types: its fingerprint, a unique start of it, or an
 * alias; and where each alias resolves, as clients resolve it. Pure.
 */
import { canonicalArchitecture } from './architectures.js';
import {
  findFingerprint,
  productAliases,
  versionFingerprint,
  versionImageType,
  type ImageType,
  type ImagesIndex,
  type PublishedVersion,
} from './images-index.js';

/** A published image as a list shows it. */
export interface ListedImage extends PublishedVersion {
  fingerprint: string;
  arch: string;
}

/** Every image the index lists (versions with a fingerprint), newest serial first. */
export function listImages(index: ImagesIndex): ListedImage[] {
  const images: ListedImage[] = [];
  for (const product of Object.values(index.products)) {
    for (const version of Object.values(product.versions)) {
      const fingerprint = versionFingerprint(version);
      const found = fingerprint ? findFingerprint(index, fingerprint) : undefined;
      if (fingerprint && found) images.push({ ...found, fingerprint, arch: product.arch ?? '' });
    }
  }
  return images.sort((a, b) => (a.serial < b.serial ? 1 : a.serial > b.serial ? -1 : 0));
}

export interface AliasTarget {
  alias: string;
  arch: string;
  fingerprint: string;
  product: string;
  /** The version the alias resolves to: the product's newest image. */
  serial: string;
  type: ImageType;
}

/** Where each alias resolves: per architecture, the newest version of the product that carries it. */
export function aliasTargets(index: ImagesIndex): AliasTarget[] {
  const targets: AliasTarget[] = [];
  for (const [product, fields] of Object.entries(index.products)) {
    const newest = Object.keys(fields.versions)
      .sort()
      .reverse()
      .map((serial) => {
        const version = fields.versions[serial];
        return { serial, version, fingerprint: version ? versionFingerprint(version) : undefined };
      })
      .find((candidate) => candidate.fingerprint !== undefined);
    if (!newest?.fingerprint || !newest.version) continue;
    const type = versionImageType(newest.version);
    for (const alias of productAliases(fields)) {
      targets.push({
        alias,
        arch: fields.arch ?? '',
        fingerprint: newest.fingerprint,
        product,
        serial: newest.serial,
        type,
      });
    }
  }
  return targets.sort((a, b) => a.alias.localeCompare(b.alias) || a.arch.localeCompare(b.arch));
}

/** The release an alias resolves to, as the aliases-moved output names it. */
export interface AliasHolder {
  product: string;
  serial: string;
  fingerprint: string;
}

/**
 * An alias of one architecture and image type (clients resolve `--vm` separately) that resolves
 * to another release after a change, or to none.
 */
export interface AliasMove {
  alias: string;
  architecture: string;
  type: ImageType;
  /** Where it resolved before; null when it was on no release of that architecture. */
  from: AliasHolder | null;
  /** Where it resolves after; null when the change took it away. */
  to: AliasHolder | null;
}

/**
 * The aliases that resolve differently in `after` than in `before`, per architecture (by its
 * Incus name) and image type, sorted by alias. An alias on several releases of an architecture
 * and type (a registry written by hand) counts as held by the first of them, by product key.
 */
export function aliasMoves(before: ImagesIndex, after: ImagesIndex): AliasMove[] {
  const holders = (index: ImagesIndex): Map<string, AliasTarget> => {
    const byKey = new Map<string, AliasTarget>();
    const targets = aliasTargets(index).sort((a, b) => a.product.localeCompare(b.product));
    for (const target of targets) {
      const key = JSON.stringify([target.alias, canonicalArchitecture(target.arch), target.type]);
      if (!byKey.has(key)) byKey.set(key, target);
    }
    return byKey;
  };
  const holder = (target: AliasTarget | undefined): AliasHolder | null =>
    target ? { product: target.product, serial: target.serial, fingerprint: target.fingerprint } : null;
  const was = holders(before);
  const now = holders(after);
  const moves: AliasMove[] = [];
  for (const key of new Set([...was.keys(), ...now.keys()])) {
    const from = was.get(key);
    const to = now.get(key);
    const either = from ?? to;
    // The same image under another product key (an old-way product split) has not moved.
    if (!either || from?.fingerprint === to?.fingerprint) continue;
    const { alias, arch, type } = either;
    moves.push({ alias, architecture: canonicalArchitecture(arch), type, from: holder(from), to: holder(to) });
  }
  return moves.sort(
    (a, b) =>
      a.alias.localeCompare(b.alias) || a.architecture.localeCompare(b.architecture) || a.type.localeCompare(b.type),
  );
}

export type Resolution =
  { kind: 'found'; image: ListedImage } | { kind: 'unknown' } | { kind: 'ambiguous'; candidates: ListedImage[] };

/**
 * The image `reference` names, resolved as the clients resolve it (`incus image info`, and the
 * daemons' download for `incus launch`): an alias first, then a full fingerprint or the start of
 * one (at least 12 hex digits, as `incus image list` shows them) that only one image has. An alias
 * that looks like a fingerprint is thus still reachable by its name; one spelled as another
 * image's whole fingerprint makes the reference ambiguous.
 */
export function resolveImage(index: ImagesIndex, reference: string): Resolution {
  const images = listImages(index);
  const byAlias = aliasTargets(index)
    .filter((target) => target.alias === reference.trim())
    .flatMap((target) => images.filter((image) => image.fingerprint === target.fingerprint));
  if (byAlias.length === 1 && byAlias[0]) {
    // An alias spelled as another image's whole fingerprint: the clients take the alias, but
    // whoever wrote 64 hex digits meant that image. Neither is guessed.
    const spelled = reference.trim().toLowerCase();
    const named = images.find((image) => image.fingerprint === spelled);
    if (named && named.fingerprint !== byAlias[0].fingerprint)
      return { kind: 'ambiguous', candidates: [byAlias[0], named] };
    return { kind: 'found', image: byAlias[0] };
  }
  if (byAlias.length > 1) return { kind: 'ambiguous', candidates: byAlias };
  const wanted = reference.trim().toLowerCase();
  if (/^[0-9a-f]{12,64}$/.test(wanted)) {
    const matches = images.filter((image) => image.fingerprint.startsWith(wanted));
    if (matches.length === 1 && matches[0]) return { kind: 'found', image: matches[0] };
    if (matches.length > 1) return { kind: 'ambiguous', candidates: matches };
  }
  return { kind: 'unknown' };
}
