import { describe, expect, it } from '@jest/globals';
import type { Settings } from '../../../src/action/inputs.js';
import { requestedAliases } from '../../../src/action/steps.js';
import { ActionError } from '../../../src/common/errors.js';
import type { LocalImage } from '../../../src/image/local-image.js';

// requestedAliases reads only the properties: the files are not opened.
const image = (variant: string): LocalImage =>
  ({
    metadata: { path: 'incus.tar.xz', size: 1, compression: 'xz' },
    data: { path: 'rootfs.squashfs', size: 1, kind: 'squashfs' },
    imageType: 'container',
    properties: {
      architecture: 'x86_64',
      creationDate: 1764547200,
      os: 'Crynux',
      release: 'bookworm',
      variant,
      propertiesArchitecture: 'amd64',
      description: 'd',
    },
    size: 2,
  }) as unknown as LocalImage;
// requestedAliases reads only these two settings.
const settings = (defaultAlias: boolean) => ({ aliases: ['crynux-node:latest'], defaultAlias }) as Settings;

describe('requestedAliases', () => {
  it('adds the default alias only when asked for', () => {
    expect(requestedAliases(settings(false), image('node'))).toEqual(['crynux-node:latest']);
    expect(requestedAliases(settings(true), image('node'))).toEqual(['crynux-node:latest', 'Crynux/bookworm/node']);
  });

  it('refuses a default alias that metadata.yaml would split or smuggle into the list', () => {
    for (const variant of ['a,crynux-node:latest', 'a b', 'a\nb', 'a\u001b[31m']) {
      const attempt = () => requestedAliases(settings(true), image(variant));
      expect(attempt).toThrow(ActionError);
      expect(attempt).toThrow(/default-alias: the alias .* holds a comma, a blank or a control character/);
    }
    // Without default-alias the fields are not used for an alias at all.
    expect(requestedAliases(settings(false), image('a,crynux-node:latest'))).toEqual(['crynux-node:latest']);
  });
});
