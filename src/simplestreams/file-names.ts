/**
 * The names a release's files are published under in images/. Pure.
 *
 * incus-simplestreams names a version's files after the sha256 of its metadata tarball
 * (images/<sha>.incus.tar.xz and <sha>.squashfs; the deltas made beside them
 * <sha>.<base serial>.vcdiff). A release built from the same metadata tarball as one the index
 * still names (a replacement with replace: true) would get the names of the files it replaces,
 * and moving it into place would rewrite bytes that clients holding a cached index still
 * download. A file whose name the index gives to other bytes is published under a name of its
 * own instead: "-" and the first 12 hex digits of the release's fingerprint before the name's
 * first dot. Identical bytes keep their name (a metadata tarball shared by both releases).
 */
import type { MadeDelta } from './deltas.js';
import type { ImagesIndex } from './images-index.js';
import type { StagedVersion } from './plan.js';

/** The name of its own for a file of the release with `fingerprint`. */
export function ownName(name: string, fingerprint: string): string {
  const dot = name.indexOf('.');
  const tag = `-${fingerprint.slice(0, 12)}`;
  return dot < 0 ? `${name}${tag}` : `${name.slice(0, dot)}${tag}${name.slice(dot)}`;
}

/** A file of a staged release: its path (images/<name>) and sha256. */
interface StagedPath {
  path: string;
  sha256: string;
}

/** The staged release's files, its deltas among them. */
export function stagedPaths(staged: StagedVersion, deltas: readonly MadeDelta[]): StagedPath[] {
  return [...Object.values(staged.version.items), ...deltas];
}

/** The paths of `files` that the index names with another sha256. */
export function pathsTakenBy(index: ImagesIndex, files: readonly StagedPath[]): Set<string> {
  const taken = new Set<string>();
  for (const product of Object.values(index.products)) {
    for (const version of Object.values(product.versions ?? {})) {
      for (const item of Object.values(version.items)) {
        if (files.some((file) => file.path === item.path && file.sha256 !== item.sha256)) taken.add(item.path);
      }
    }
  }
  return taken;
}

/**
 * The staged release and its deltas with each path in `rename` given a name of its own (ownName);
 * the same objects when there is nothing to rename.
 */
export function withOwnNames(
  staged: StagedVersion,
  deltas: readonly MadeDelta[],
  rename: ReadonlySet<string>,
  fingerprint: string,
): { staged: StagedVersion; deltas: MadeDelta[] } {
  if (rename.size === 0) return { staged, deltas: [...deltas] };
  const own = (path: string): string => {
    if (!rename.has(path)) return path;
    const slash = path.lastIndexOf('/');
    return path.slice(0, slash + 1) + ownName(path.slice(slash + 1), fingerprint);
  };
  const items = Object.fromEntries(
    Object.entries(staged.version.items).map(([key, item]) => [key, { ...item, path: own(item.path) }]),
  );
  return {
    staged: { ...staged, version: { ...staged.version, items } },
    deltas: deltas.map((delta) => ({ ...delta, path: own(delta.path) })),
  };
}
