// `incus image info` / `lxc image info` against a harness registry, with the options registry.ts's
// incusImageInfo does not take (the LXD client, --vm). Uses a remote and client config of its
// own (under the registry's root), so it never touches the registry's own client setup.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { run, runOk, type ExecResult } from './exec.js';
import type { Registry } from './registry.js';

export type Client = 'incus' | 'lxc';

const REMOTE = 'kinds';
const remotes = new WeakMap<Registry, Map<Client, Promise<NodeJS.ProcessEnv>>>();

/** The client environment with a config dir of this helper's own, holding the remote. */
function clientEnv(registry: Registry, client: Client): Promise<NodeJS.ProcessEnv> {
  let byClient = remotes.get(registry);
  if (!byClient) remotes.set(registry, (byClient = new Map<Client, Promise<NodeJS.ProcessEnv>>()));
  let ready = byClient.get(client);
  if (!ready) {
    ready = (async () => {
      const conf = path.join(registry.root, 'clients-conf', client);
      await fsp.mkdir(conf, { recursive: true });
      const env = { ...registry.clientEnv(), [client === 'incus' ? 'INCUS_CONF' : 'LXD_CONF']: conf };
      await runOk(client, ['remote', 'add', REMOTE, registry.httpsUrl, '--protocol=simplestreams', '--public'], {
        env,
      });
      return env;
    })();
    ready.catch(() => byClient.delete(client));
    byClient.set(client, ready);
  }
  return ready;
}

/** Runs `<client> image info [--vm] kinds:<ref>` on what the server serves now (no client cache). */
export async function imageInfo(
  registry: Registry,
  client: Client,
  ref: string,
  opts: { vm?: boolean } = {},
): Promise<ExecResult> {
  const env = await clientEnv(registry, client);
  // Both clients cache the index under $HOME/.cache: drop it so the query sees the server's state.
  await fsp.rm(path.join(env['HOME'] ?? registry.root, '.cache'), { recursive: true, force: true });
  return run(client, ['image', 'info', ...(opts.vm ? ['--vm'] : []), `${REMOTE}:${ref}`], {
    env,
    timeoutMs: 60_000,
  });
}

/** `lxc image info REMOTE:ref` output; fails like registry.incusImageInfo when the client fails. */
export async function lxcImageInfo(registry: Registry, ref: string): Promise<string> {
  const result = await imageInfo(registry, 'lxc', ref);
  if (result.code !== 0) throw new Error(`lxc image info ${ref} exited with ${result.code}\n${result.stderr}`);
  return result.stdout;
}

/** The fingerprint and type an `image info` output shows. */
export function parseImageInfo(text: string): { fingerprint?: string; type?: string } {
  const fingerprint = /^Fingerprint: ([0-9a-f]{64})$/m.exec(text)?.[1];
  const type = /^Type: (\S+)$/m.exec(text)?.[1];
  return { ...(fingerprint ? { fingerprint } : {}), ...(type ? { type } : {}) };
}

/** Each alias the client lists on the registry, and the fingerprint it names (one `image list`). */
export async function listedAliases(registry: Registry, client: Client): Promise<Map<string, string[]>> {
  const env = await clientEnv(registry, client);
  await fsp.rm(path.join(env['HOME'] ?? registry.root, '.cache'), { recursive: true, force: true });
  const result = await run(client, ['image', 'list', `${REMOTE}:`, '--format', 'json'], { env, timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`${client} image list exited with ${result.code}\n${result.stderr}`);
  const aliases = new Map<string, string[]>();
  for (const image of JSON.parse(result.stdout) as { fingerprint: string; aliases?: { name: string }[] }[]) {
    for (const { name } of image.aliases ?? []) aliases.set(name, [...(aliases.get(name) ?? []), image.fingerprint]);
  }
  return aliases;
}
