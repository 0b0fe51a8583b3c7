// Published images launched by real daemons: Incus 6.0 (incusd) and LXD 5.0 (lxd). A daemon does
// more than the clients' listing: it downloads every file through nginx, checks each sha256 and
// the fingerprint, unpacks the image and boots it. Each container kind (split and unified) is
// published through the committed bundle as a runner would, then launched by both daemons.
//
// VMs are not launched: this needs /dev/kvm, which the test machines do not have (a split VM and
// a unified VM are published and resolved by both clients in kinds.test.ts).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, runBundle, type BundleRun } from '../harness/action.js';
import { type DaemonKind, type Daemons, freshRemoteUrl, startDaemons, stopDaemonTest } from '../harness/daemons.js';
import { BOOT_MARKER, makeBootableImage, type BootableImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';
import { accessLog } from '../harness/tree.js';

let registry: Registry;
let daemons: Daemons;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  daemons = await startDaemons(registry.caFile);
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-boot-'));
});
afterAll(() => stopDaemonTest({ daemons, registry, work }));

describe.each(['split', 'unified'] as const)('a %s container published by the bundle', (form) => {
  let image: BootableImage;
  let published: BundleRun;
  const alias = `crynux-boot-${form}:v1`;

  beforeAll(async () => {
    image = await makeBootableImage(path.join(work, form), {
      os: 'Crynux',
      release: 'bookworm',
      variant: `boot-${form}`,
      form,
    });
    published = await runBundle(inputsFor(registry, image, { aliases: alias }));
    if (published.code !== 0) {
      throw new Error(`the action failed (exit ${published.code}):\n${published.stdout}\n${published.stderr}`);
    }
  });

  it('has the fingerprint the harness computed', () => {
    expect(published.outputs['fingerprint']).toBe(image.fingerprint);
    expect(published.outputs['image-type']).toBe('container');
  });

  it.each(['incus', 'lxd'] as const)(
    'boots under %s: exec works, volatile.base_image is the fingerprint',
    async (kind: DaemonKind) => {
      const daemon = daemons[kind];
      // A URL this daemon has not cached an index for (it keeps one about an hour).
      const url = freshRemoteUrl(registry.httpsUrl);
      const remote = await daemon.addRemote(url);

      const logBefore = (await accessLog(registry)).length;
      const name = await daemon.launch(`${remote}:${alias}`);
      try {
        // The init ran: it wrote the instance name (from the image's hostname template) and the
        // image's token.
        expect((await daemon.readFileIn(name, BOOT_MARKER)).trim()).toBe(image.marker(name));
        expect(await daemon.configGet(name, 'volatile.base_image')).toBe(published.outputs['fingerprint']);
        expect(await daemon.localImages()).toContain(image.fingerprint);

        // The daemon itself fetched every file of the image from nginx over TLS (the daemons try
        // http:// first, which the TLS port answers with 400, then https://).
        const agent = kind === 'incus' ? '"Incus ' : '"LXD ';
        const fetched = new Set(
          (await accessLog(registry))
            .slice(logBefore)
            .split('\n')
            .filter((line) => line.includes(agent) && / 200 \d+ /.test(line))
            .map((line) => /"GET \/images\/([^ ]+) HTTP/.exec(line)?.[1])
            .filter((file): file is string => file !== undefined),
        );
        expect(fetched.size).toBe(form === 'split' ? 2 : 1);
      } finally {
        await daemon.deleteInstance(name);
        await daemon.cliOk(['image', 'delete', image.fingerprint]);
        await daemon.cliOk(['remote', 'remove', remote]);
      }
    },
  );
});
