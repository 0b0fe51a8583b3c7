/** The upload's progress lines (percent and MB/s), logged every few seconds by registry/upload.ts. */

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
