import { which } from '@actions/io';
import { ActionError } from '../common/errors.js';
import type { Compression, LocalFile } from './local-image.js';

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

/** The Debian and Ubuntu package of each decompressor (the install line an error gives). */
const DECOMPRESSOR_PACKAGES: Record<keyof typeof DECOMPRESSORS, string> = {
  xz: 'xz-utils',
  gzip: 'gzip',
  bzip2: 'bzip2',
  zstd: 'zstd',
};

/**
 * Fails, naming the tool and how to install it, when the decompressor `file` needs is not on the
 * runner's PATH: checked before anything is read, so a runner without it is not mistaken for a
 * file that holds no metadata.yaml.
 */
export async function requireDecompressor(file: LocalFile, compression: Compression): Promise<void> {
  if (compression === 'none') return;
  const [command] = DECOMPRESSORS[compression];
  if (await which(command, false)) return;
  throw new ActionError(
    `${file.input}: ${file.path} is ${compression}-compressed, and reading it needs ${command} on the runner, which ` +
      `is not on the PATH. Install it in an earlier step (Debian and Ubuntu: sudo apt-get install -y ` +
      `${DECOMPRESSOR_PACKAGES[compression]}), or run the job on a runner that has it (ubuntu-latest does).`,
    file.input,
  );
}
