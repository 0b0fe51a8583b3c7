// A registry with many releases, written straight into the harness registry's tree as the
// publishing user: an images.json of `count` release products of one image line, each naming two
// tiny files that exist. For tests of what grows with the registry.
import { createHash } from 'node:crypto';
import type { Registry } from './registry.js';

export interface SeedOptions {
  count: number;
  /** The line's variant (os Crynux, release bookworm, amd64); its files are named after it. */
  variant: string;
  /** Each release's alias is `<aliasPrefix>v<i>`. */
  aliasPrefix: string;
}

export interface Seeded {
  /** The images.json written. */
  json: string;
  /** The files it names, relative to the registry root (images/…). */
  files: string[];
}

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

/** The index `seedReleases` writes (pure). */
export function releasesIndex(options: SeedOptions): Seeded {
  const { count, variant, aliasPrefix } = options;
  const products: Record<string, unknown> = {};
  const files: string[] = [];
  const base = Date.UTC(2020, 0, 1) / 1000;
  for (let i = 0; i < count; i++) {
    const serial = new Date((base + i * 3600) * 1000).toISOString().replace(/[-T:]/g, '').slice(0, 12);
    const meta = sha(`${variant} metadata ${i}`);
    files.push(`images/${meta}.incus.tar.xz`, `images/${meta}.squashfs`);
    products[`Crynux:bookworm:${variant}:amd64:${serial}`] = {
      arch: 'amd64',
      os: 'Crynux',
      release: 'bookworm',
      variant,
      aliases: `${aliasPrefix}v${i}`,
      versions: {
        [serial]: {
          items: {
            'incus.tar.xz': {
              ftype: 'incus.tar.xz',
              path: `images/${meta}.incus.tar.xz`,
              sha256: meta,
              size: 1,
              combined_squashfs_sha256: sha(`${variant} fingerprint ${i}`),
            },
            squashfs: { ftype: 'squashfs', path: `images/${meta}.squashfs`, sha256: meta, size: 1 },
          },
        },
      },
    };
  }
  const json = JSON.stringify({ content_id: 'images', datatype: 'image-downloads', format: 'products:1.0', products });
  return { json, files };
}

/** Writes the index and creates its files (names over stdin, never as arguments). */
export async function seedReleases(registry: Registry, options: SeedOptions): Promise<Seeded> {
  const seeded = releasesIndex(options);
  const dir = registry.simplestreamsDir;
  const index = await registry.ssh(`set -e; cd ${dir}; mkdir -p images streams/v1; cat > streams/v1/images.json`, {
    input: seeded.json,
    timeoutMs: 120_000,
  });
  const made = await registry.ssh(`set -e; cd ${dir}; xargs -r touch --; ls images | wc -l`, {
    input: seeded.files.join('\n') + '\n',
    timeoutMs: 120_000,
  });
  if (index.code !== 0 || made.code !== 0 || Number(made.stdout.trim()) < seeded.files.length) {
    throw new Error(`seeding failed (${made.stdout.trim()} files): ${index.stderr} ${made.stderr}`);
  }
  return seeded;
}
