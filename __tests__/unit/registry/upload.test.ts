// The upload's planning: which blocks are missing, and reading back what the server reported
// (registry/upload.ts); the transfer itself is tested against a real sshd (integration).
import { describe, expect, it } from '@jest/globals';
import { missingBlocks, parseUploadReport } from '../../../src/registry/upload.js';

describe('missingBlocks', () => {
  it('cuts a fresh file into blocks, the last one shorter', () => {
    expect(missingBlocks([], 10, 4)).toEqual([
      { offset: 0, length: 4 },
      { offset: 4, length: 4 },
      { offset: 8, length: 2 },
    ]);
    expect(missingBlocks([], 8, 4)).toHaveLength(2);
    expect(missingBlocks([], 0, 4)).toEqual([]);
  });

  it('leaves out what the server holds, parts of blocks included', () => {
    const done = [
      { offset: 0, length: 4 },
      { offset: 8, length: 3 },
    ];
    expect(missingBlocks(done, 16, 4)).toEqual([
      { offset: 4, length: 4 },
      { offset: 11, length: 4 },
      { offset: 15, length: 1 },
    ]);
    expect(missingBlocks([{ offset: 0, length: 16 }], 16, 4)).toEqual([]);
  });
});

describe('parseUploadReport', () => {
  const sha = 'a'.repeat(64);
  it('reads complete files, recorded blocks and their hash, per file', () => {
    const states = parseUploadReport([`F 1 421 ${sha}`, 'B 2 0 4194304', 'B 2 8388608 100', `H 2 ${sha}`], 2);
    expect(states[0]).toEqual({ complete: { size: 421, sha256: sha }, blocks: [] });
    expect(states[1]).toEqual({
      blocks: [
        { offset: 0, length: 4194304 },
        { offset: 8388608, length: 100 },
      ],
      blocksSha256: sha,
    });
  });

  it('ignores what is not its own: noise, other files, malformed numbers and hashes', () => {
    const states = parseUploadReport(
      ['Welcome!', 'B 3 0 5', 'B 1 -1 5', 'B 1 0 5x', 'B 0 0 5', `F 1 12 ${sha.slice(1)}`, 'H 1 xyz', 'N 1'],
      2,
    );
    expect(states).toEqual([{ blocks: [] }, { blocks: [] }]);
  });
});
