/** keep-versions: how many releases of an image line stay in the index. Pure. */
import { isNewestVersion } from './aliases.js';
import {
  cloneIndex,
  findFingerprint,
  holdsImages,
  lineIdentity,
  productAliases,
  referencedPaths,
  releasesOf,
  versionFingerprint,
  type ImagesIndex,
  type Release,
} from './images-index.js';

/** Which aliases clients follow (the followed-aliases input): `latest`, `crynux-node:latest-base` … */
export type FollowedAliases = (alias: string) => boolean;

/** The followed-aliases default: an alias whose name after its last ':' starts with "latest". */
export const DEFAULT_FOLLOWED_ALIASES = ['latest*'];

/**
 * The aliases `patterns` name, `*` standing for any characters (none included): a pattern with a
 * ':' matches a whole alias, one without matches the alias's name after its last ':' (all of it
 * when it has none). The default, `latest*`: crynux-node:latest, crynux-node:latest-base, latest.
 */
export function followedAliases(patterns: readonly string[]): FollowedAliases {
  const matchers = patterns.map((pattern) => {
    const expression = new RegExp(
      `^${pattern
        .split('*')
        .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    );
    return (alias: string) => expression.test(pattern.includes(':') ? alias : alias.slice(alias.lastIndexOf(':') + 1));
  });
  return (alias) => matchers.some((matches) => matches(alias));
}

export interface RetentionOptions {
  /** Releases kept: the newest `keep` (at least 1). */
  keep: number;
  /** The release just published (or whose aliases were put in place): its line is the one pruned. */
  fingerprint: string;
  followed: FollowedAliases;
  /**
   * release-is-version: the line is (os, variant, architecture) and `keep` counts its releases
   * (v3.5.0, v3.4.0 …), newest first by their newest version; of each release kept, only its
   * newest version stays (the older ones are earlier builds of the same version).
   */
  releaseIsVersion?: boolean;
}

export interface RetentionResult {
  index: ImagesIndex;
  /** `product version` of each dropped version. */
  dropped: string[];
  /** Releases kept beyond the newest `keep`, and the followed aliases that kept them. */
  keptForAliases: { product: string; serial: string; aliases: string[] }[];
  /** Files only the dropped versions named. */
  retired: string[];
}

/**
 * Keeps the newest `keep` releases of the image line of the release with `fingerprint`
 * (os/release/variant/arch, whatever products hold them), and no other line: a publish of one
 * line never prunes another's. Never dropped: that release itself (even if its serial is older),
 * and a release that a followed alias resolves to (`latest` rolled back to an older release stays
 * where clients find it). A product left without versions goes, and its other aliases with it: a
 * pinned alias names its release only. Files are retired only when no remaining version names
 * them.
 */
export function applyRetention(index: ImagesIndex, options: RetentionOptions): RetentionResult {
  const { keep, fingerprint, followed } = options;
  const line = { releaseIsVersion: options.releaseIsVersion ?? false };
  const next = cloneIndex(index);
  const result: RetentionResult = { index: next, dropped: [], keptForAliases: [], retired: [] };
  const published = findFingerprint(next, fingerprint);
  const publishedProduct = published ? next.products[published.product] : undefined;
  if (keep <= 0 || !published || !publishedProduct) return result;
  const droppedPaths: string[] = [];
  // Serials are creation dates (YYYYMMDDhhmm in UTC, as incus-simplestreams writes them too):
  // newest first, never by what a release is called.
  const newestFirst = releasesOf(next, lineIdentity(published.product, publishedProduct, line), line).sort((a, b) =>
    a.serial < b.serial ? 1 : a.serial > b.serial ? -1 : 0,
  );
  const within = withinNewest(newestFirst, next, keep, line.releaseIsVersion);
  newestFirst.forEach(({ product, serial, version }, position) => {
    if (within(position) || versionFingerprint(version) === fingerprint) return;
    const holder = next.products[product];
    if (!holder) return;
    const following = isNewestVersion(holder, serial) ? productAliases(holder).filter(followed) : [];
    if (following.length > 0) {
      result.keptForAliases.push({ product, serial, aliases: following });
      return;
    }
    delete holder.versions[serial];
    if (!holdsImages(holder)) delete next.products[product];
    result.dropped.push(`${product} ${serial}`);
    droppedPaths.push(...Object.values(version.items).map((item) => item.path));
  });
  const stillNamed = referencedPaths(next);
  result.retired = [...new Set(droppedPaths)].filter((path) => !stillNamed.has(path));
  return result;
}

/**
 * Whether the release at a position of `newestFirst` is among the newest `keep`: by position, or
 * with releaseIsVersion, when it is the newest version of one of the newest `keep` releases.
 */
function withinNewest(
  newestFirst: readonly Release[],
  index: ImagesIndex,
  keep: number,
  releaseIsVersion: boolean,
): (position: number) => boolean {
  if (!releaseIsVersion) return (position) => position < keep;
  const seen = new Set<string>();
  const kept = new Set<number>();
  newestFirst.forEach(({ product }, position) => {
    const release = index.products[product]?.release ?? product;
    if (seen.has(release)) return;
    seen.add(release);
    if (seen.size <= keep) kept.add(position);
  });
  return (position) => kept.has(position);
}
