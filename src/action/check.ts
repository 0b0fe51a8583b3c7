/**
 * The check sub-action (check/action.yml): the registry doctor. Reads its inputs, connects as a
 * publish does, checks (and with repair mends) the registry under its lock (registry/check.ts),
 * and reports in the log, the outputs and the job summary; fails the step by fail-on.
 */
import * as core from '@actions/core';
import { timedGroup } from '../common/debug.js';
import { ActionError } from '../common/errors.js';
import { untrustedLine } from '../common/untrusted.js';
import { checkRegistry, type CheckReport, type ReportedFinding } from '../registry/check.js';
import { Registry } from '../registry/registry.js';
import { readCheckSettings, type CheckSettings } from './inputs.js';
import { runStep } from './step.js';
import { REPAIR_REFUSED, shownFindings, writeCheckSummary, type CheckedServer } from './summary.js';
import * as log from '../common/log.js';
import { describeError, oneLine } from '../common/errors.js';
import { checkBucket } from '../bucket/check.js';
import type { Bucket } from '../bucket/store.js';
import { readLiveIndex } from '../registry/read.js';
import { fleetDrift } from '../simplestreams/health.js';
import type { ImagesIndex } from '../simplestreams/images-index.js';
import { bucketRunsOf, describeFleet, failureOf, fleetOf, where, type Server } from './fleet.js';

export type CheckStatus = 'healthy' | 'repaired' | 'problems';

/** healthy: nothing found; repaired: all of it mended; problems: something remains. */
export function checkStatus(report: CheckReport): CheckStatus {
  if (report.findings.length === 0) return 'healthy';
  return report.findings.every((finding) => finding.repaired) ? 'repaired' : 'problems';
}

const remaining = (report: CheckReport, severity: ReportedFinding['severity']): number =>
  report.findings.filter((finding) => !finding.repaired && finding.severity === severity).length;

function logFindings(report: CheckReport): void {
  const { shown, hidden } = shownFindings(report);
  for (const [kind, count] of hidden) log.info(`${kind}: ${count} more, not shown here (the report output lists them)`);
  for (const finding of shown) {
    const state = finding.repaired ? 'repaired' : finding.repairable ? 'repair: true mends it' : 'left to you';
    const line = untrustedLine(`${finding.kind}: ${finding.subject}: ${finding.detail} (${state})`);
    if (finding.repaired) log.info(`repaired ${line}`);
    else if (finding.severity === 'error') log.error(line, { title: 'lxc-publish check' });
    else log.warning(line, { title: 'lxc-publish check' });
    if (!finding.repaired && finding.advice) log.info(`  What to do: ${finding.advice}`);
  }
}

/** Findings of each kind the report output holds: outputs are limited to 1 MB per job. */
const REPORTED_PER_KIND = 100;

/** The report output: the first `perKind` findings of each kind, and how many more there were. */
export function reportOutput(report: CheckReport, status: CheckStatus, perKind = REPORTED_PER_KIND): object {
  const counts = new Map<string, number>();
  const omitted: Record<string, number> = {};
  const findings = report.findings.filter((finding) => {
    const count = (counts.get(finding.kind) ?? 0) + 1;
    counts.set(finding.kind, count);
    if (count <= perKind) return true;
    omitted[finding.kind] = (omitted[finding.kind] ?? 0) + 1;
    return false;
  });
  return { status, ...report, findings, omitted };
}

/** The step fails when a finding of fail-on's severity (or worse) remains. */
function failure(report: CheckReport, settings: CheckSettings): ActionError | undefined {
  if (settings.failOn === 'never') return undefined;
  const errors = remaining(report, 'error');
  const warnings = remaining(report, 'warning');
  const failing = settings.failOn === 'error' ? errors : errors + warnings;
  if (failing === 0) return undefined;
  const repairable = report.findings.some((finding) => !finding.repaired && finding.repairable);
  return new ActionError(
    `The registry in ${settings.simplestreamsDir} has ${errors} error(s) and ${warnings} warning(s) (fail-on: ` +
      `${settings.failOn}); the log and the job summary list them with what to do.` +
      (repairable && !settings.repair ? ' Set repair: true to mend those it can.' : ''),
    'fail-on',
  );
}

/** The outputs, the log line and the summary of one report (the host input's server's, with a fleet). */
function describeReport(report: CheckReport, status: CheckStatus): void {
  log.info(
    `${report.products} products, ${report.versions} versions, ${report.files} files (${report.hashed} hashed, ` +
      `${report.late} not reached within hash-time): ${status}`,
  );
  logFindings(report);
  if (report.repairRefused) log.warning(REPAIR_REFUSED, { title: 'lxc-publish check' });
}

/** uses: crynux/lxc-publish/check */
export function runCheck(): Promise<void> {
  return runStep('Registry check failed', async (onSettings) => {
    const settings = onSettings(readCheckSettings());
    if (settings.mirrors.length > 0 || settings.buckets.length > 0) return checkFleet(settings);
    const registry = await timedGroup(`Connect to ${settings.host}:${settings.port}`, () =>
      Registry.open({ ...settings, uploadDir: '' }),
    );
    let report: CheckReport;
    try {
      report = await timedGroup(
        settings.repair ? 'Check and repair the registry under its lock' : 'Check the registry under its lock',
        () => checkRegistry(registry, settings),
      );
    } finally {
      registry.close();
    }
    const status = checkStatus(report);
    describeReport(report, status);
    core.setOutput('status', status);
    core.setOutput('errors', remaining(report, 'error'));
    core.setOutput('warnings', remaining(report, 'warning'));
    core.setOutput('repaired', report.findings.filter((finding) => finding.repaired).length);
    core.setOutput('report', JSON.stringify(reportOutput(report, status)));
    const { host, port } = settings;
    setCheckedServersOutput([{ name: settings.serverName, host, port, ...counts(report, status) }]);
    if (settings.summary && process.env['GITHUB_STEP_SUMMARY']) await writeCheckSummary(report, status, settings);
    const failed = failure(report, settings);
    if (failed) throw failed;
  });
}

/** A member of the fleet being checked: a server, or a bucket (checked against the host input's server). */
interface CheckRun {
  server: Server<{ host: string; port: number; simplestreamsDir: string }>;
  bucket?: Bucket;
  report?: CheckReport;
  error?: unknown;
}

/** A server of the fleet being checked. */
interface ServerCheck extends CheckRun {
  server: Server<CheckSettings>;
  registry?: Registry;
  index?: ImagesIndex;
}

const counts = (report: CheckReport, status: CheckStatus) => ({
  status,
  errors: remaining(report, 'error'),
  warnings: remaining(report, 'warning'),
  repaired: report.findings.filter((finding) => finding.repaired).length,
});

function setCheckedServersOutput(servers: readonly CheckedServer[]): void {
  core.setOutput('servers', JSON.stringify(servers));
}

/** The worst of the statuses: problems, then repaired, then healthy. */
function worst(statuses: CheckStatus[]): CheckStatus {
  return statuses.includes('problems') ? 'problems' : statuses.includes('repaired') ? 'repaired' : 'healthy';
}

/**
 * Every server of the fleet checked (each under its own lock, at once), the mirrors compared with
 * the host input's server, then each bucket checked against that server.
 */
async function checkFleet(settings: CheckSettings): Promise<void> {
  const servers: ServerCheck[] = fleetOf(settings).map((server) => ({ server }));
  const buckets: CheckRun[] = bucketRunsOf(settings.buckets);
  const primary = servers[0] as ServerCheck;
  const members: CheckRun[] = [...servers, ...buckets];
  try {
    await timedGroup(`Check ${describeFleet(servers, buckets)}`, async () => {
      await Promise.all(
        servers.map((run) =>
          log.onServer(run.server.name, async () => {
            try {
              run.registry = await Registry.open({ ...run.server.settings, uploadDir: '' });
              run.report = await checkRegistry(run.registry, run.server.settings);
              run.index = await readLiveIndex(run.registry).catch(() => undefined);
            } catch (error) {
              run.error = error;
            }
          }),
        ),
      );
      for (const run of servers.slice(1)) {
        if (!run.report || !run.index || !primary.index) continue;
        const drift = fleetDrift(primary.index, run.index, primary.server.name);
        run.report.findings.push(...drift.map((finding) => ({ ...finding, repaired: false })));
      }
      // One after the other: a repair holds the host input's server's registry lock.
      for (const run of buckets) {
        await log.onServer(run.server.name, async () => {
          try {
            if (!primary.registry || !primary.report)
              throw new ActionError(
                `not checked: a bucket is checked against the host input's server (${primary.server.name}), which could not be`,
              );
            await (run.bucket as Bucket).check();
            run.report = await checkBucket(primary.registry, run.bucket as Bucket, settings);
          } catch (error) {
            run.error = error;
          }
        });
      }
    });
  } finally {
    for (const run of servers) run.registry?.close();
    for (const run of buckets) run.bucket?.close();
  }
  const checked: CheckedServer[] = members.map((run) => {
    const { host, port, simplestreamsDir } = run.server.settings;
    const place = { name: run.server.name, host, port, ...(run.bucket ? { bucket: simplestreamsDir } : {}) };
    if (!run.report) {
      const error = oneLine(describeError(run.error));
      return { ...place, status: 'not-checked', errors: 0, warnings: 0, repaired: 0, error };
    }
    return { ...place, ...counts(run.report, checkStatus(run.report)) };
  });
  for (const run of members) {
    const report = run.report;
    if (report) await log.onServer(run.server.name, () => Promise.resolve(describeReport(report, checkStatus(report))));
  }
  const reports = members.flatMap((run) => (run.report ? [run.report] : []));
  const all: CheckReport = {
    findings: reports.flatMap((report) => report.findings),
    products: primary.report?.products ?? 0,
    versions: primary.report?.versions ?? 0,
    files: primary.report?.files ?? 0,
    hashed: reports.reduce((sum, report) => sum + report.hashed, 0),
    late: reports.reduce((sum, report) => sum + report.late, 0),
    indexRepaired: reports.some((report) => report.indexRepaired),
    repairRefused: reports.some((report) => report.repairRefused),
  };
  const unchecked = members.filter((run) => !run.report);
  const status = unchecked.length > 0 ? 'problems' : worst(reports.map(checkStatus));
  core.setOutput('status', status);
  core.setOutput('errors', remaining(all, 'error') + unchecked.length);
  core.setOutput('warnings', remaining(all, 'warning'));
  core.setOutput('repaired', all.findings.filter((finding) => finding.repaired).length);
  // Outputs are limited to 1 MB per job: the findings shown per kind are shared out among the
  // members, and the host input's server's report is given once, at the top.
  const perKind = Math.max(10, Math.floor(REPORTED_PER_KIND / members.length));
  core.setOutput(
    'report',
    JSON.stringify({
      ...reportOutput(primary.report ?? all, status, perKind),
      servers: members.map((run, k) => ({
        ...checked[k],
        ...(run.report && run !== primary
          ? { report: reportOutput(run.report, checkStatus(run.report), perKind) }
          : {}),
      })),
    }),
  );
  setCheckedServersOutput(checked);
  if (settings.summary && process.env['GITHUB_STEP_SUMMARY'])
    await writeCheckSummary(primary.report ?? all, status, settings, checked);
  if (settings.failOn === 'never') return;
  if (unchecked.length > 0) {
    const reasons = unchecked.map((run) => `${where(run)}: ${failureOf(run).message.replace(/\.$/, '')}`);
    throw new ActionError(
      `Could not check ${reasons.join('; ')}. The others were checked: the log and the servers output say what they found.`,
      unchecked.map((run) => failureOf(run).input).find((input) => input !== undefined),
    );
  }
  const failing = checked.filter(
    (server) => server.errors > 0 || (settings.failOn === 'warning' && server.warnings > 0),
  );
  if (failing.length > 0) {
    const repairable = all.findings.some((finding) => !finding.repaired && finding.repairable);
    throw new ActionError(
      `Problems remain on ${failing.map((server) => `${server.name} (${server.errors} error(s), ${server.warnings} warning(s))`).join(', ')} ` +
        `(fail-on: ${settings.failOn}); the log and the servers output list them with what to do.` +
        (repairable && !settings.repair ? ' Set repair: true to mend those it can.' : ''),
      'fail-on',
    );
  }
}
