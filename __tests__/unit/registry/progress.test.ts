import { describe, expect, it } from '@jest/globals';
import { formatProgress } from '../../../src/registry/progress.js';

describe('formatProgress', () => {
  it('shows percent, sizes and MB/s', () => {
    expect(formatProgress({ label: 'rootfs.squashfs', sent: 128e6, total: 256e6, elapsedSeconds: 2 })).toBe(
      'rootfs.squashfs: 50% (128.0 MB of 256.0 MB), 64.0 MB/s',
    );
    expect(formatProgress({ label: 'm', sent: 8660, total: 8660, elapsedSeconds: 0 })).toBe(
      'm: 100% (8.7 kB of 8.7 kB), 0.0 MB/s',
    );
    expect(formatProgress({ label: 'd', sent: 1.5e9, total: 3e9, elapsedSeconds: 10 })).toBe(
      'd: 50% (1.50 GB of 3.00 GB), 150.0 MB/s',
    );
  });
});
