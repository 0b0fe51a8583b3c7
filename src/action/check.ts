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
import { REPAIR_REFUSED, shownFindings, writeCheckSummary } from './summary.js';

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
  for (const [kind, count] of hidden)
    core.info(`${kind}: ${count} more, not shown here (the report output lists them)`);
  for (const finding of shown) {
    const state = finding.repaired ? 'repaired' : finding.repairable ? 'repair: true mends it' : 'left to you';
    const line = untrustedLine(`${finding.kind}: ${finding.subject}: ${finding.detail} (${state})`);
    if (finding.repaired) core.info(`repaired ${line}`);
    else if (finding.severity === 'error') core.error(line, { title: 'lxc-publish check' });
    else core.warning(line, { title: 'lxc-publish check' });
    if (!finding.repaired && finding.advice) core.info(`  What to do: ${finding.advice}`);
  }
}

/** Findings of each kind the report output holds: outputs are limited to 1 MB per job. */
const REPORTED_PER_KIND = 100;

/** The report output: the first REPORTED_PER_KIND findings of each kind, and how many more there were. */
export function reportOutput(report: CheckReport, status: CheckStatus): object {
  const counts = new Map<string, number>();
  const omitted: Record<string, number> = {};
  const findings = report.findings.filter((finding) => {
    const count = (counts.get(finding.kind) ?? 0) + 1;
    counts.set(finding.kind, count);
    if (count <= REPORTED_PER_KIND) return true;
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

/** uses: crynux/lxc-publish/check */
export function runCheck(): Promise<void> {
  return runStep('Registry check failed', async (onSettings) => {
    const settings = onSettings(readCheckSettings());
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
    core.info(
      `${report.products} products, ${report.versions} versions, ${report.files} files (${report.hashed} hashed, ` +
        `${report.late} not reached within hash-time): ${status}`,
    );
    logFindings(report);
    if (report.repairRefused) core.warning(REPAIR_REFUSED, { title: 'lxc-publish check' });
    core.setOutput('status', status);
    core.setOutput('errors', remaining(report, 'error'));
    core.setOutput('warnings', remaining(report, 'warning'));
    core.setOutput('repaired', report.findings.filter((finding) => finding.repaired).length);
    core.setOutput('report', JSON.stringify(reportOutput(report, status)));
    if (settings.summary && process.env['GITHUB_STEP_SUMMARY']) await writeCheckSummary(report, status, settings);
    const failed = failure(report, settings);
    if (failed) throw failed;
  });
}
