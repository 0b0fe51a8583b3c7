// read.sh's dry mode (dry-run) changes nothing, and refuses what the real preflight refuses: a
// dry run that reports a plan for a publish that then fails would mislead.
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const SCRIPT = resolve('src/registry/server/read.sh');
const root = mkdtempSync(join(tmpdir(), 'lxc-publish-read-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** read.sh as the preflight runs it: check, the tool `sh`, dry or not. Its exit status. */
function preflight(ss: string, up: string, dry: boolean): number | null {
  return spawnSync('sh', [SCRIPT, ss, up, 'sh', '1', '', dry ? '1' : ''], { encoding: 'utf8' }).status;
}

function fresh(name: string): { ss: string; up: string } {
  const dir = join(root, name);
  mkdirSync(join(dir, 'ss'), { recursive: true });
  return { ss: join(dir, 'ss'), up: join(dir, 'uploads') };
}

describe('read.sh dry mode', () => {
  it('makes no directory where the real preflight makes two, and both find no index yet (3)', () => {
    const dry = fresh('dry');
    expect(preflight(dry.ss, dry.up, true)).toBe(3);
    expect({ ss: readdirSync(dry.ss), up: readdirSync(join(dry.up, '..')) }).toEqual({ ss: [], up: ['ss'] });
    const real = fresh('real');
    expect(preflight(real.ss, real.up, false)).toBe(3);
    expect(readdirSync(real.ss)).toEqual(['.lxc-publish']);
    expect(statSync(real.up).isDirectory()).toBe(true);
  });

  it.each([
    [
      'a file where a parent of upload-dir would be',
      (dir: string) => writeFileSync(join(dir, 'file'), ''),
      'file/uploads',
    ],
    ['a file as upload-dir', (dir: string) => writeFileSync(join(dir, 'uploads'), ''), 'uploads'],
  ])('refuses upload-dir (6) with %s, as the real preflight does', (_what, make, relative) => {
    for (const dry of [true, false]) {
      const { ss } = fresh(`up-${relative.replace('/', '-')}-${String(dry)}`);
      const dir = join(ss, '..');
      make(dir);
      expect({ dry, code: preflight(ss, join(dir, relative), dry) }).toEqual({ dry, code: 6 });
    }
  });

  it('refuses a state directory that is a file (7), as the chmod of the real preflight would', () => {
    for (const dry of [true, false]) {
      const { ss, up } = fresh(`state-file-${String(dry)}`);
      writeFileSync(join(ss, '.lxc-publish'), '');
      expect({ dry, code: preflight(ss, up, dry) }).toEqual({ dry, code: 7 });
    }
  });
});
