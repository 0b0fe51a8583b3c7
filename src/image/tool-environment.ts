/**
 * The tools that read image files (tar, xz, tar2sqfs, mksquashfs) parse hostile input: they get
 * a minimal environment, so no input of the step (the SSH key among them) reaches them.
 */

/** The environment of every tool that reads image files: what it needs, nothing of the runner's. */
export function toolEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin', LC_ALL: 'C', ...extra };
}
