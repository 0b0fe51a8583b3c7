/** Copy-paste client commands for the job summary: add the registry as a remote, launch the image. */
import type { ImageType } from '../simplestreams/images-index.js';
import { quoteArg } from '../ssh/shell.js';

/** What the launch line needs of a publish result. */
export interface LaunchTarget {
  fingerprint: string;
  aliases: readonly string[];
  imageType: ImageType;
}

const INSTANCE_PLACEHOLDER = 'my-instance';

/**
 * Copy-paste lines for both clients: add the registry as a remote, launch the image (by its
 * first alias, or by the fingerprint's first 12 digits, as `incus image list` shows it). Every
 * word is shell-quoted when it needs to be.
 */
export function clientCommands(remote: string, url: string, result: LaunchTarget): { incus: string[]; lxc: string[] } {
  const reference = result.aliases[0] ?? result.fingerprint.slice(0, 12);
  const lines = (client: string): string[] => [
    [client, 'remote', 'add', remote, url, '--protocol=simplestreams'].map(quoteArg).join(' '),
    [
      client,
      'launch',
      `${remote}:${reference}`,
      INSTANCE_PLACEHOLDER,
      ...(result.imageType === 'virtual-machine' ? ['--vm'] : []),
    ]
      .map(quoteArg)
      .join(' '),
  ];
  return { incus: lines('incus'), lxc: lines('lxc') };
}
