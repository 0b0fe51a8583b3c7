/** The job summary: what was published, and how to use it. */
import * as core from '@actions/core';

export interface PublishResult {
  status: 'published' | 'unchanged' | 'replaced';
  fingerprint: string;
  product: string;
  serial: string;
  aliases: string[];
  imageType: 'container' | 'virtual-machine';
  size: number;
}

function code(text: string): string {
  const escaped = text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  return `<code>${escaped}</code>`;
}

export function formatSize(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]} (${bytes} bytes)`;
}

/** The command a user runs to start the image from a remote called `remote`. */
export function launchCommand(result: PublishResult, remote: string): string {
  const reference = result.aliases[0] ?? result.fingerprint.slice(0, 12);
  const vm = result.imageType === 'virtual-machine' ? ' --vm' : '';
  return `incus launch ${remote}:${reference} my-instance${vm}`;
}

export async function writeSummary(result: PublishResult, remote = 'REMOTE'): Promise<void> {
  core.summary
    .addHeading(result.status === 'unchanged' ? 'Image already published' : 'Image published', 2)
    .addTable([
      [
        { data: 'Field', header: true },
        { data: 'Value', header: true },
      ],
      ['Status', result.status],
      ['Fingerprint', code(result.fingerprint)],
      ['Product', code(result.product)],
      ['Serial', result.serial],
      ['Aliases', result.aliases.length > 0 ? result.aliases.map(code).join(', ') : '(none)'],
      ['Type', result.imageType],
      ['Size', formatSize(result.size)],
    ])
    .addRaw(`Launch it (after <code>incus remote add</code> of the registry as ${code(remote)}):`, true)
    .addCodeBlock(launchCommand(result, remote), 'sh');
  await core.summary.write();
}
