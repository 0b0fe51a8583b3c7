// The release workflow's checks (scripts/release-notes.sh, which .github/workflows/release.yml
// runs on a pushed tag): the tag must be vX.Y.Z, package.json must say X.Y.Z, and CHANGELOG.md
// must have a section for it, whose body becomes the release notes.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let dir: string;

const CHANGELOG = `# Changelog

Intro.

## [Unreleased]

## [1.2.0] - 2026-12-06

### Added

- The check sub-action.

## [1.1.0] - 2026-11-01

- Older.
`;

function project(version: string, changelog = CHANGELOG): string {
  const root = mkdtempSync(join(dir, 'project-'));
  mkdirSync(join(root, 'scripts'));
  copyFileSync('scripts/release-notes.sh', join(root, 'scripts/release-notes.sh'));
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'lxc-publish', version }));
  writeFileSync(join(root, 'CHANGELOG.md'), changelog);
  return root;
}

const notes = (root: string, tag: string) =>
  spawnSync('bash', [join(root, 'scripts/release-notes.sh'), tag], { encoding: 'utf8' });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'release-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('scripts/release-notes.sh', () => {
  it("prints the tag's CHANGELOG section as the notes", () => {
    const run = notes(project('1.2.0'), 'v1.2.0');
    expect(run.status).toBe(0);
    expect(run.stdout).toBe('### Added\n\n- The check sub-action.\n');
  });

  it('fails on a tag that package.json does not name, saying how to release', () => {
    const run = notes(project('1.1.0'), 'v1.2.0');
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      /the tag is v1\.2\.0 but package\.json says 1\.1\.0: release with scripts\/release\.sh 1\.2\.0/,
    );
  });

  it('fails without a CHANGELOG section for the version, or with an empty one', () => {
    expect(notes(project('1.3.0'), 'v1.3.0').stderr).toMatch(/CHANGELOG\.md has no "## \[1\.3\.0\]" section/);
    const empty = project('1.2.0', CHANGELOG.replace('### Added\n\n- The check sub-action.\n', ''));
    expect(notes(empty, 'v1.2.0').status).toBe(1);
  });

  it('fails on a tag that is not vX.Y.Z', () => {
    for (const tag of ['1.2.0', 'v1.2', 'v1.2.0-rc.1', 'v01.2.0', '']) {
      const run = notes(project('1.2.0'), tag);
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/is not vX\.Y\.Z/);
    }
  });

  it('is what the release workflow runs on the pushed tag', async () => {
    const { readFileSync } = await import('node:fs');
    const workflow = readFileSync('.github/workflows/release.yml', 'utf8');
    expect(workflow).toContain('bash scripts/release-notes.sh "$GITHUB_REF_NAME"');
    expect(workflow).toContain('bash .ci/run');
    expect(workflow).toMatch(/gh release create "\$GITHUB_REF_NAME" .*--notes-file/);
  });
});
