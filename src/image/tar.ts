/** Reading tarballs on the runner with GNU tar, whatever their compression (tar detects it). */
import { getExecOutput } from '@actions/exec';
import { which } from '@actions/io';
import { ActionError } from '../common/errors.js';

/** Runs GNU tar quietly and returns its stdout; fails with its stderr. */
async function runTar(args: string[]): Promise<string> {
  const tar = await which('tar', false);
  if (!tar) {
    throw new ActionError(
      'tar is not installed on the runner; it is needed to read metadata.yaml. Install GNU tar and xz.',
    );
  }
  const result = await getExecOutput(tar, args, { silent: true, ignoreReturnCode: true });
  if (result.exitCode !== 0) throw new Error(result.stderr.trim() || `tar exited with status ${result.exitCode}`);
  return result.stdout;
}

/** The text of the first member named one of `names`, or undefined when there is none. */
export async function readMember(tarball: string, names: readonly string[]): Promise<string | undefined> {
  for (const member of names) {
    try {
      // --occurrence stops at the first match instead of reading the whole (possibly large) archive.
      return await runTar(['--occurrence=1', '-xOf', tarball, member]);
    } catch {
      // not under this name; try the next
    }
  }
  return undefined;
}

/** Whether the tarball holds a member named one of `names`. */
export async function holdsMember(tarball: string, names: readonly string[]): Promise<boolean> {
  const listing = await runTar(['-tf', tarball]);
  return listing.split('\n').some((name) => names.includes(name));
}
