/**
 * The environment of the tools that read image files (decompressors, the squashfs converters):
 * they parse hostile input, so they get nothing of the runner's environment (no key, no token)
 * beyond what they need to run.
 */

/** PATH, LC_ALL=C and `extra` (SOURCE_DATE_EPOCH for the converters), nothing else. */
export function toolEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'] || '/usr/local/bin:/usr/bin:/bin', LC_ALL: 'C', ...extra };
}

/** The decompressor commands (stdin to stdout) per compression; none reads the file as it is. */
export const DECOMPRESSORS = {
  xz: ['xz', '-dc'],
  gzip: ['gzip', '-dc'],
  bzip2: ['bzip2', '-dc'],
  zstd: ['zstd', '-dcq'],
} as const;
