// What a test reads back from the registry's tree: the live images.json as plain JSON (not
// through the action's own parser, so a test does not trust what it tests), its items, the
// files it names that are missing, and nginx's access log.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Registry } from './registry.js';

export interface TreeItem extends Record<string, unknown> {
  ftype: string;
  path: string;
  sha256: string;
  size: number;
}

export interface TreeIndex {
  products: Record<
    string,
    { aliases?: string; arch?: string; versions: Record<string, { items: Record<string, TreeItem> }> }
  >;
}

export async function readTreeIndex(registry: Registry): Promise<TreeIndex> {
  return JSON.parse(
    await fsp.readFile(path.join(registry.simplestreamsDir, 'streams', 'v1', 'images.json'), 'utf8'),
  ) as TreeIndex;
}

/** Every item of the index, or of the products `keep` accepts (by key). */
export function treeItems(index: TreeIndex, keep: (product: string) => boolean = () => true): TreeItem[] {
  return Object.entries(index.products ?? {})
    .filter(([key]) => keep(key))
    .flatMap(([, product]) => Object.values(product.versions ?? {}))
    .flatMap((version) => Object.values(version.items ?? {}));
}

/** Paths the index (by default the live one) names that are not on disk. */
export async function missingFiles(registry: Registry, index?: TreeIndex): Promise<string[]> {
  const paths = new Set(treeItems(index ?? (await readTreeIndex(registry))).map((item) => item.path));
  const missing: string[] = [];
  for (const named of paths) {
    await fsp.access(path.join(registry.simplestreamsDir, named)).catch(() => missing.push(named));
  }
  return missing;
}

/** nginx's access log so far (one request per line). */
export function accessLog(registry: Registry): Promise<string> {
  return fsp.readFile(path.join(registry.root, 'logs', 'nginx-access.log'), 'utf8');
}
