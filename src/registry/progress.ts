/**
 * A pass-through stream that counts bytes and reports progress (percent and MB/s) every few
 * seconds, so long uploads show that they are moving. It also feeds the bytes to hashes, so that
 * an upload computes the fingerprint without a second read of the file.
 */
import type { Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export interface ProgressReport {
  label: string;
  sent: number;
  /** Bytes sent in this pass; the rate is computed from these. Defaults to `sent`. */
  sentThisPass?: number;
  total: number;
  elapsedSeconds: number;
}

/** Sizes in the units that MB/s uses (decimal). */
function decimalSize(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} bytes`;
}

export function formatProgress({ label, sent, sentThisPass, total, elapsedSeconds }: ProgressReport): string {
  const percent = total > 0 ? Math.floor((sent / total) * 100) : 100;
  const rate = elapsedSeconds > 0 ? (sentThisPass ?? sent) / 1e6 / elapsedSeconds : 0;
  return `${label}: ${percent}% (${decimalSize(sent)} of ${decimalSize(total)}), ${rate.toFixed(1)} MB/s`;
}

export class ProgressCounter extends Transform {
  private sent: number;
  private readonly started = Date.now();
  private lastReport = Date.now();

  /** `alreadySent`: bytes the server held before this pass (a resumed upload). */
  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly report: (line: string) => void,
    private readonly intervalMs = 5000,
    private readonly alreadySent = 0,
    private readonly hashes: Hash[] = [],
  ) {
    super();
    this.sent = alreadySent;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.sent += chunk.length;
    for (const hash of this.hashes) hash.update(chunk);
    const now = Date.now();
    if (now - this.lastReport >= this.intervalMs) {
      this.lastReport = now;
      this.report(formatProgress(this.snapshot()));
    }
    callback(null, chunk);
  }

  /** Bytes passed so far (including those already sent) and time since the start. */
  snapshot(): ProgressReport {
    return {
      label: this.label,
      sent: this.sent,
      sentThisPass: this.sent - this.alreadySent,
      total: this.total,
      elapsedSeconds: (Date.now() - this.started) / 1000,
    };
  }
}
