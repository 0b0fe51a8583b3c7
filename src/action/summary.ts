/** The job summary: what was published, where it is served, and how to use it. */
import * as core from '@actions/core';
import type { PublicCheckResult } from '../public/check.js';
import { clientCommands, REMOTE_PLACEHOLDER } from '../public/commands.js';
import { defaultRemoteName } from '../public/remote.js';
import type { CheckReport, ReportedFinding } from '../registry/check.js';
import type { DayTwoResult } from '../registry/day-two.js';
import type { PublishResult } from '../registry/publication.js';
import type { AliasMove } from '../simplestreams/resolve.js';
import type { ServerOutcome, ServerResult } from './fleet.js';
import { oneLine } from '../common/errors.js';

export interface SummaryOptions {
  /**
   * The public URL the image was checked at (checkPublicRegistry resolved): shown in the table as
   * served, and used in the commands. '' or absent: placeholders in the commands.
   */
  publicUrl?: string;
  /** Remote name for the commands; default: derived from publicUrl, or REMOTE without one. */
  remoteName?: string;
  /** The check's result, for the details of the "Served" row. */
  publicCheck?: PublicCheckResult;
  /** Why the public check failed (the image is published all the same). */
  publicFailure?: string;
  /** Show the `lxc` commands (default true; LXD clients see the image only with lxd-compat). */
  lxd?: boolean;
  /** With mirrors: each server's outcome (a table of the fleet). */
  servers?: ServerOutcome[];
}

const URL_PLACEHOLDER = 'https://your-registry.example';

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function code(text: string): string {
  return `<code>${escapeHtml(text)}</code>`;
}

export function formatSize(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]} (${bytes} bytes)`;
}

/** The command a user runs to start the image from a remote called `remote`. */
export function launchCommand(result: PublishResult, remote: string): string {
  return clientCommands(remote, URL_PLACEHOLDER, result).incus[1] as string;
}

/** A fenced code block that no line of `lines` can close early. */
function codeBlock(lines: readonly string[], lang: string): string {
  const longest = Math.max(
    0,
    ...(lines
      .join('\n')
      .match(/`+/g)
      ?.map((run) => run.length) ?? []),
  );
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}${lang}\n${lines.join('\n')}\n${fence}`;
}

function servedText(check: PublicCheckResult | undefined): string {
  if (!check) return 'yes';
  const files = `${check.files.length} file${check.files.length === 1 ? '' : 's'}`;
  const attempts = check.attempts > 1 ? ` (after ${check.attempts} attempts, ${check.elapsedSeconds} s)` : '';
  return `yes: index.json, images.json and ${files} with the right sizes${attempts}`;
}

const HEADINGS: Record<PublishResult['status'], string> = {
  published: 'Image published',
  replaced: 'Image published (a release of the same serial replaced)',
  'aliases-updated': 'Image already published; aliases moved onto it',
  unchanged: 'Image already published',
  'dry-run': 'Dry run: nothing was published',
};

function describeHolder(holder: AliasMove['from']): string {
  return holder ? `${code(holder.product)} (${code(holder.fingerprint.slice(0, 12))})` : 'nothing';
}

function describeMove(move: AliasMove): string {
  const kind = move.type === 'virtual-machine' ? `${move.architecture}, VM` : move.architecture;
  return `${code(move.alias)} (${escapeHtml(kind)}): from ${describeHolder(move.from)} to ${describeHolder(move.to)}`;
}

/** The summary's text (HTML table and Markdown code blocks); untrusted strings are escaped. */
export function buildSummary(result: PublishResult, options: SummaryOptions = {}): string {
  const publicUrl = options.publicUrl ?? '';
  const remote = options.remoteName || (publicUrl ? defaultRemoteName(publicUrl) : REMOTE_PLACEHOLDER);
  const rows: [string, string][] = [
    [
      'Status',
      result.preview
        ? `dry-run (a publish would report ${escapeHtml(result.preview.status)})`
        : escapeHtml(result.status),
    ],
    ['Fingerprint', code(result.fingerprint)],
    ['Product', code(result.product)],
    ['Serial', escapeHtml(result.serial)],
    ['Aliases', result.aliases.length > 0 ? result.aliases.map(code).join(', ') : '(none)'],
    ['Type', escapeHtml(result.imageType)],
    ['Size', escapeHtml(formatSize(result.size))],
  ];
  if (result.deltas && result.deltas.length > 0) {
    const deltas = result.deltas.map(
      (delta) =>
        `from ${escapeHtml(delta.base)}: ${escapeHtml(formatSize(delta.size))}, ${(delta.share * 100).toFixed(2)}% of the squashfs`,
    );
    rows.push(['Deltas', deltas.join('<br>')]);
  }
  if (result.aliasMoves.length > 0) {
    rows.push([
      result.preview ? 'Aliases that would move' : 'Aliases moved',
      result.aliasMoves.map(describeMove).join('<br>'),
    ]);
  }
  if (result.preview) {
    const { dropped, deltaBases } = result.preview;
    rows.push(['keep-versions would drop', dropped.length > 0 ? dropped.map(code).join('<br>') : '(nothing)']);
    rows.push(['Deltas would be tried from', deltaBases.length > 0 ? deltaBases.map(escapeHtml).join(', ') : '(none)']);
  }
  if (publicUrl && !result.preview) {
    rows.push(['Public URL', `<a href="${escapeHtml(publicUrl)}">${escapeHtml(publicUrl)}</a>`]);
    rows.push([
      'Served',
      options.publicFailure !== undefined
        ? `<strong>not confirmed</strong>: ${escapeHtml(options.publicFailure)}`
        : options.publicCheck
          ? escapeHtml(servedText(options.publicCheck))
          : 'not checked (public-check: off)',
    ]);
  }
  const table = [
    '<table>',
    '<tr><th>Field</th><th>Value</th></tr>',
    ...rows.map(([field, value]) => `<tr><td>${field}</td><td>${value}</td></tr>`),
    '</table>',
  ].join('\n');
  const fleet = options.servers && options.servers.length > 1 ? ['### Servers', serversTable(options.servers)] : [];
  const commands = clientCommands(remote, publicUrl || URL_PLACEHOLDER, result);
  const intro = result.preview
    ? `Once published, add the registry as ${code(remote)} and launch the image:`
    : publicUrl
      ? `Add the registry as ${code(remote)} and launch the image:`
      : `Add the registry as a remote (${code(REMOTE_PLACEHOLDER)} and the URL are placeholders: set ` +
        `${code('public-url')} to check the registry and get the exact commands) and launch the image:`;
  const parts = [
    `## ${HEADINGS[result.status]}`,
    table,
    ...fleet,
    '### Use it',
    intro,
    'With Incus:',
    codeBlock(commands.incus, 'sh'),
  ];
  if (options.lxd ?? true) parts.push('With LXD:', codeBlock(commands.lxc, 'sh'));
  return parts.join('\n\n') + '\n';
}

/** A fleet member's row: its name, where it is, its status, and a detail already escaped. */
interface FleetRow {
  name: string;
  address: string;
  status: string;
  detailHtml: string;
}

function fleetTable(rows: readonly FleetRow[]): string {
  return [
    '<table>',
    '<tr><th>Server</th><th>Address</th><th>Status</th><th>Detail</th></tr>',
    ...rows.map(
      (row) =>
        `<tr><td>${escapeHtml(row.name)}</td><td>${code(row.address)}</td><td>${escapeHtml(row.status)}</td><td>${row.detailHtml}</td></tr>`,
    ),
    '</table>',
  ].join('\n');
}

/** Where a fleet member is: host:port, and a bucket's bucket/prefix. */
const address = (server: { host: string; port: number; bucket?: string }): string =>
  `${server.host}:${server.port}${server.bucket !== undefined ? ` ${server.bucket}` : ''}`;

/** One row per server of a fleet: where it is, what the run did there, and why it failed. */
export function serversTable(servers: readonly ServerOutcome<ServerResult>[]): string {
  return fleetTable(
    servers.map((server) => ({
      name: server.name,
      address: address(server),
      status: server.status,
      detailHtml: server.error
        ? escapeHtml(server.error)
        : server.result && server.result.product !== ''
          ? `${code(server.result.product)} version ${escapeHtml(server.result.serial)}`
          : '',
    })),
  );
}

/** What the check found on one member of a fleet (or why it could not look). */
export interface CheckedServer {
  name: string;
  host: string;
  port: number;
  bucket?: string;
  status: string;
  errors: number;
  warnings: number;
  repaired: number;
  error?: string;
}

/** The check sub-action's table of the fleet. */
export function checkedServersTable(servers: readonly CheckedServer[]): string {
  return fleetTable(
    servers.map((server) => ({
      name: server.name,
      address: address(server),
      status: server.status,
      detailHtml: escapeHtml(
        server.error ?? `${server.errors} error(s), ${server.warnings} warning(s), ${server.repaired} repaired`,
      ),
    })),
  );
}

/** Writes the job summary. */
export async function writeSummary(result: PublishResult, options: SummaryOptions = {}): Promise<void> {
  await core.summary.addRaw(buildSummary(result, options)).write();
}

/**
 * The job summary of a failed run: what went wrong and what to do, as the error says. The message
 * quotes metadata and server output, so the HTML is built here with everything escaped
 * (core.summary.addCodeBlock does not escape).
 */
export function buildFailureSummary(message: string, heading = 'Image not published'): string {
  return `<h2>${escapeHtml(heading)}</h2>\n<pre><code>${escapeHtml(message)}</code></pre>\n`;
}

export async function writeFailureSummary(message: string, heading?: string): Promise<void> {
  await core.summary.addRaw(buildFailureSummary(message, heading)).write();
}

const DAY_TWO_HEADINGS: Record<DayTwoResult['status'], string> = {
  updated: 'Aliases moved',
  unchanged: 'Aliases already in place',
  removed: 'Image removed from the index',
  'dry-run': 'Dry run: nothing was changed',
  'not-found': 'Image not listed',
};

/**
 * The summary of the alias and remove sub-actions: what was done, and where every alias now
 * resolves (on the first server, with a fleet's table of servers after it).
 */
function buildDayTwoSummary(result: DayTwoResult, servers: readonly ServerOutcome<DayTwoResult>[] = []): string {
  const rows: [string, string][] = [
    ['Status', escapeHtml(result.status)],
    ['Fingerprint', code(result.fingerprint)],
    ['Product', code(result.product)],
    ['Serial', escapeHtml(result.serial)],
  ];
  if (result.removedAliases.length > 0)
    rows.push(['Aliases removed with it', result.removedAliases.map(code).join(', ')]);
  if (result.aliasMoves.length > 0) {
    const moved = result.status === 'dry-run' ? 'Aliases that would move' : 'Aliases moved';
    rows.push([moved, result.aliasMoves.map(describeMove).join('<br>')]);
  }
  const table = [
    '<table>',
    ...rows.map(([field, value]) => `<tr><td>${field}</td><td>${value}</td></tr>`),
    '</table>',
  ].join('\n');
  const aliases = [
    '<table>',
    '<tr><th>Alias</th><th>Architecture</th><th>Image</th><th>Product</th></tr>',
    ...result.aliases.map(
      (target) =>
        `<tr><td>${code(target.alias)}</td><td>${escapeHtml(target.arch)}</td><td>${code(target.fingerprint.slice(0, 12))}</td><td>${code(target.product)}</td></tr>`,
    ),
    '</table>',
  ].join('\n');
  const after = result.status === 'dry-run' ? 'Where the aliases would resolve' : 'Where the aliases resolve now';
  const fleet = servers.length > 1 ? ['### Servers', serversTable(servers)] : [];
  return [`## ${DAY_TWO_HEADINGS[result.status]}`, table, ...fleet, `### ${after}`, aliases].join('\n\n') + '\n';
}

export async function writeDayTwoSummary(
  result: DayTwoResult,
  servers: readonly ServerOutcome<DayTwoResult>[] = [],
): Promise<void> {
  await core.summary.addRaw(buildDayTwoSummary(result, servers)).write();
}

/** Findings shown of each kind in the log and the summary; the report output has them all. */
export const SHOWN_PER_KIND = 20;

/** The findings to show: the first SHOWN_PER_KIND of each kind, and how many of each were left out. */
export function shownFindings(report: CheckReport): { shown: ReportedFinding[]; hidden: Map<string, number> } {
  const counts = new Map<string, number>();
  const shown: ReportedFinding[] = [];
  const hidden = new Map<string, number>();
  for (const finding of report.findings) {
    const count = (counts.get(finding.kind) ?? 0) + 1;
    counts.set(finding.kind, count);
    if (count <= SHOWN_PER_KIND) shown.push(finding);
    else hidden.set(finding.kind, (hidden.get(finding.kind) ?? 0) + 1);
  }
  return { shown, hidden };
}

export const REPAIR_REFUSED =
  'repair: true was not attempted: an error above (open permissions, an index that is missing or cannot be read) must be fixed first.';

const CHECK_HEADINGS: Record<'healthy' | 'repaired' | 'problems', string> = {
  healthy: 'Registry check: nothing wrong found',
  repaired: 'Registry check: everything found was repaired',
  problems: 'Registry check: problems remain',
};

/** The check sub-action's summary: what was looked at, and each finding with what became of it. */
export function buildCheckSummary(
  report: CheckReport,
  status: keyof typeof CHECK_HEADINGS,
  where: { host: string; simplestreamsDir: string },
  servers: readonly CheckedServer[] = [],
): string {
  const looked =
    `${escapeHtml(where.host)}:${code(where.simplestreamsDir)}: ${report.products} products, ${report.versions} versions, ` +
    `${report.files} files named; sizes checked for all, sha256 for ${report.hashed}` +
    (report.late > 0 ? ` (${report.late} not reached within hash-time)` : '') +
    '.';
  const parts = [`## ${CHECK_HEADINGS[status]}`, looked];
  if (report.findings.length > 0) {
    const { shown, hidden } = shownFindings(report);
    parts.push(
      [
        '<table>',
        '<tr><th>Severity</th><th>Problem</th><th>Where</th><th>What is wrong</th><th>Repair</th></tr>',
        ...shown.map((finding) => {
          const repair = finding.repaired
            ? 'repaired'
            : finding.repairable
              ? 'repair: true mends it'
              : `left to you: ${escapeHtml(oneLine(finding.advice ?? ''))}`;
          // One line per cell: a blank line would end the HTML block, and the rest render as Markdown.
          return (
            `<tr><td>${finding.severity}</td><td>${code(finding.kind)}</td><td>${code(oneLine(finding.subject))}</td>` +
            `<td>${escapeHtml(oneLine(finding.detail))}</td><td>${repair}</td></tr>`
          );
        }),
        '</table>',
      ].join('\n'),
    );
    if (report.repairRefused) parts.push(escapeHtml(REPAIR_REFUSED));
    for (const [kind, count] of hidden)
      parts.push(`And ${count} more ${code(kind)}, not shown here: the \`report\` output lists them all.`);
  }
  // With mirrors or buckets: the above is the host input's server; the others' findings are in the log and the report output.
  if (servers.length > 1) parts.push('### Servers', checkedServersTable(servers));
  return parts.join('\n\n') + '\n';
}

export async function writeCheckSummary(
  report: CheckReport,
  status: keyof typeof CHECK_HEADINGS,
  where: { host: string; simplestreamsDir: string },
  servers: readonly CheckedServer[] = [],
): Promise<void> {
  await core.summary.addRaw(buildCheckSummary(report, status, where, servers)).write();
}
