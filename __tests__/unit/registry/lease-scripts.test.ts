// The lease fragments (src/registry/server/lib) run here as the server runs them, under dash, on
// a local directory: what a fence check sees while a clean-up looks at a lease, and what is left
// of a holder killed on its own.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const LIB = resolve('src/registry/server');
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'lease-scripts-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs `script` under dash in the server scripts' directory (so `. ./lib/x.sh` finds its fragment). */
function dash(script: string, env: Record<string, string> = {}): { status: number | null; output: string } {
  const result = spawnSync('dash', ['-c', script], {
    cwd: LIB,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within 20 s`);
    await new Promise((done) => setTimeout(done, 20));
  }
}

describe('a clean-up looking at a dead lease', () => {
  it('never makes it pass for alive: an operation fenced by it is refused meanwhile', async () => {
    const dir = mkdtempSync(join(work, 'housekeeping-'));
    const state = join(dir, 'state');
    mkdirSync(join(state, 'holders'), { recursive: true });
    // The lease of a run that died a while ago: its file is there, nobody holds it.
    const holder = join(state, 'holders', 'abc123');
    writeFileSync(holder, '');
    spawnSync('touch', ['-d', '-5 min', holder]);
    // An rm that waits, with the clean-up's lock on the lease file held (as a slow disk would).
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'rm'),
      `#!/bin/sh\ncase "$*" in *holders/*) touch ${dir}/rm-waiting; while [ ! -e ${dir}/go ]; do sleep 0.02; done ;; esac\nexec /bin/rm "$@"\n`,
      { mode: 0o755 },
    );
    const vars = `state=${state} ss=${dir}/ss up=${dir}/up retire_grace=0 upload_grace_minutes=60 lock=${dir}/lock token=abc123`;
    const cleanUp = spawn(
      'dash',
      ['-c', `${vars}; . ./lib/housekeeping.sh; : > ${dir}/named; housekeep ${dir}/named`],
      {
        cwd: LIB,
        env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}` },
        stdio: 'ignore',
      },
    );
    const cleanedUp = new Promise<number | null>((done) => cleanUp.on('close', done));
    try {
      await until(() => existsSync(join(dir, 'rm-waiting')), 'the clean-up reaching the lease file');
      const fenced = dash(`${vars}; . ./lib/fence.sh; enter_lease; echo "changed the registry"`);
      expect(fenced).toEqual({ status: 73, output: `lxc-publish: the lease on ${dir}/lock was lost\n` });
    } finally {
      writeFileSync(join(dir, 'go'), '');
    }
    expect(await cleanedUp).toBe(0);
    expect(existsSync(holder)).toBe(false);
  });
});

describe('a lease holder killed on its own (not its process group)', () => {
  it('holds neither the lock nor the lease a moment later, though its lease runs 30 s', async () => {
    const dir = mkdtempSync(join(work, 'holder-'));
    const vars = `state=${dir}/state lock=${dir}/lock timeout=5 lease=30 token=def456`;
    // Its heartbeats come through a FIFO held open here, as sshd holds a session's input open
    // (a pipe of Node's would end with the child, and end the wait for the next heartbeat too).
    spawnSync('mkfifo', [join(dir, 'heartbeats')]);
    const heartbeats = openSync(join(dir, 'heartbeats'), 'r+');
    const holder = spawn(
      'dash',
      [
        '-c',
        `${vars}; . ./lib/take-lock.sh; . ./lib/lease.sh; lock_file 9 -x "$lock"; begin_lease; echo locked; hold_lease`,
      ],
      { cwd: LIB, stdio: [heartbeats, 'pipe', 'inherit'] },
    );
    const closed = new Promise<void>((done) => holder.on('close', () => done()));
    let out = '';
    holder.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await until(() => out === 'locked\n', 'the holder taking the lock');
    // Its reader waits for the next heartbeat, for up to 30 s: only the holder's death can end the
    // lease sooner.
    const free = () =>
      dash(`flock -n -x ${dir}/lock true && flock -n -s ${dir}/state/holders/def456 true`).status === 0;
    expect(free()).toBe(false);
    const killedAt = Date.now();
    holder.kill('SIGKILL');
    await until(free, 'the lock and the lease going with the holder');
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    await closed;
    closeSync(heartbeats);
  });
});
