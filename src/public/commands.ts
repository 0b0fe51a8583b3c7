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

/** The remote name shown when neither remote-name nor public-url gives one. */
export const REMOTE_PLACEHOLDER = 'REMOTE';

/**
 * `incus launch REMOTE:REFERENCE [INSTANCE] [--vm]`: the image by its first alias, or by the
 * fingerprint's first 12 digits (as `incus image list` shows it). Every word is shell-quoted when
 * it needs to be.
 */
export function launchLine(client: 'incus' | 'lxc', remote: string, target: LaunchTarget, instance?: string): string {
  const reference = target.aliases[0] ?? target.fingerprint.slice(0, 12);
  return [
    client,
    'launch',
    `${remote}:${reference}`,
    ...(instance ? [instance] : []),
    ...(target.imageType === 'virtual-machine' ? ['--vm'] : []),
  ]
    .map(quoteArg)
    .join(' ');
}

/** Copy-paste lines for both clients: add the registry as a remote, launch the image. */
export function clientCommands(remote: string, url: string, result: LaunchTarget): { incus: string[]; lxc: string[] } {
  const lines = (client: 'incus' | 'lxc'): string[] => [
    [client, 'remote', 'add', remote, url, '--protocol=simplestreams'].map(quoteArg).join(' '),
    launchLine(client, remote, result, INSTANCE_PLACEHOLDER),
  ];
  return { incus: lines('incus'), lxc: lines('lxc') };
}
