/**
 * Reading the registry's state: the live index (with the checks made before any upload) and the
 * version of the server's incus-simplestreams.
 */
import { ActionError, describeError } from '../common/errors.js';
import { INSTALL_INCUS_SIMPLESTREAMS } from '../common/hints.js';
import { emptyImagesIndex, type ImagesIndex } from '../simplestreams/images-index.js';
import { parseImagesIndex } from '../simplestreams/parse.js';
import { remoteFailure } from '../ssh/remote-failure.js';
import { SHORT_COMMAND_TIMEOUT_SECONDS, type CommandResult } from '../ssh/session.js';
import { commandLine, quoteArg } from '../ssh/shell.js';
import { untrusted, untrustedLine } from '../common/untrusted.js';
import { liveIndexPath } from './layout.js';
import type { Registry } from './registry.js';
import { NO_XDELTA3_LINE, READ_LIVE_EXIT, READ_LIVE_INDEX } from './scripts.js';

/** Parses an images.json the server printed; the error names the file and the usual cause. */
export function parseIndexText(text: Buffer, path: string): ImagesIndex {
  try {
    return parseImagesIndex(text.toString('utf8'));
  } catch (error) {
    throw new ActionError(
      `${path} on the server cannot be read as a simplestreams index: ${describeError(error)}. ` +
        "If the SSH user's shell startup files (.bashrc) print text, make them quiet for non-interactive logins.",
    );
  }
}

export interface Preflight {
  /** The convert tool that must be on the server's PATH: incus-simplestreams or convert-command; '' for none. */
  tool: string;
  /** Also find out whether xdelta3 is on the server's PATH (for deltas). */
  deltas?: boolean;
  /** A dry run: check, but make no directory and change no permission. */
  dryRun?: boolean;
}

/** The live index and what the preflight found about optional tools. */
export interface ServerState {
  index: ImagesIndex;
  /** images.json as read (empty when there is none yet). */
  text: Buffer;
  /** Whether xdelta3 is on the PATH; true when not asked. */
  xdelta3: boolean;
}

/**
 * The live images.json, or an empty index when the registry has none yet. With `preflight`, it
 * also checks the server before anything is uploaded: the tool is there, upload-dir and
 * simplestreams-dir can be written.
 */
export async function readLiveIndex(registry: Registry, preflight?: Preflight): Promise<ImagesIndex> {
  return (await readServerState(registry, preflight)).index;
}

/** readLiveIndex, and whether xdelta3 is on the server's PATH (asked with `preflight.deltas`). */
export async function readServerState(registry: Registry, preflight?: Preflight): Promise<ServerState> {
  const { simplestreamsDir, uploadDir } = registry.paths;
  const path = liveIndexPath(registry.paths);
  // Exit codes, not stderr, tell the cases apart: a login shell may print noise of its own.
  // As the connection's first command (before an upload), the login shell's check rides with it.
  const result = await registry.execProbedScript(
    READ_LIVE_INDEX,
    [
      simplestreamsDir,
      preflight ? uploadDir : '',
      preflight?.tool ?? '',
      preflight ? '1' : '',
      preflight?.deltas ? '1' : '',
      preflight?.dryRun ? '1' : '',
    ],
    { timeoutSeconds: SHORT_COMMAND_TIMEOUT_SECONDS, what: `Reading ${path}` },
  );
  const xdelta3 = !result.stderr.split('\n').some((line) => line.trim() === NO_XDELTA3_LINE);
  switch (result.code) {
    case 0:
      return { index: parseIndexText(result.stdout, path), text: result.stdout, xdelta3 };
    case READ_LIVE_EXIT.noIndexYet:
      return { index: emptyImagesIndex(), text: Buffer.alloc(0), xdelta3 };
    default:
      throw readFailure(registry, result, preflight);
  }
}

/** The error for read.sh's exit status (READ_LIVE_EXIT), naming the input at fault and the fix. */
export function readFailure(registry: Registry, result: CommandResult, preflight?: Preflight): ActionError {
  const { simplestreamsDir, uploadDir } = registry.paths;
  switch (result.code) {
    case READ_LIVE_EXIT.noSimplestreamsDir:
      return new ActionError(
        `simplestreams-dir: ${simplestreamsDir} does not exist on the server. Create it (see docs/server-setup.md) or fix the input.`,
        'simplestreams-dir',
      );
    case READ_LIVE_EXIT.noTool:
      return preflight?.tool === 'incus-simplestreams'
        ? new ActionError(
            "incus-simplestreams is not installed on the server (or not on the SSH user's PATH). " +
              `${INSTALL_INCUS_SIMPLESTREAMS} Nothing was uploaded.`,
            'simplestreams-dir',
          )
        : new ActionError(
            `convert-command: ${preflight?.tool ?? ''} is not an executable on the server's PATH. Nothing was uploaded.`,
            'convert-command',
          );
    case READ_LIVE_EXIT.uploadDirNotWritable:
      return new ActionError(
        `upload-dir: the SSH user cannot write (or create) ${uploadDir} on the server. Give it ` +
          'ownership of that directory (see docs/server-setup.md). Nothing was uploaded.',
        'upload-dir',
      );
    case READ_LIVE_EXIT.writableByOthers: {
      const dir = result.stderr.trim().split('\n').at(-1) ?? simplestreamsDir;
      const input = dir === uploadDir ? 'upload-dir' : 'simplestreams-dir';
      return new ActionError(
        `${input}: ${untrusted(dir)} on the server can be written by other users than the SSH user (group or others ` +
          "have write permission), or is a symbolic link inside simplestreams-dir. The web server's user must only " +
          `read the registry, or it could change what is published. Run on the server: chmod g-w,o-w ${untrustedLine(quoteArg(dir))} ` +
          '(see docs/server-setup.md: mode 2755). Nothing was uploaded.',
        input,
      );
    }
    case READ_LIVE_EXIT.simplestreamsDirNotWritable:
      return new ActionError(
        `simplestreams-dir: the SSH user cannot write ${untrusted(result.stderr.trim().split('\n').at(-1) ?? simplestreamsDir)} on ` +
          'the server. Give it ownership of simplestreams-dir and everything in it (see docs/server-setup.md). ' +
          'Nothing was uploaded.',
        'simplestreams-dir',
      );
    default:
      return new ActionError(remoteFailure(`Reading ${liveIndexPath(registry.paths)}`, result));
  }
}

/** The version of incus-simplestreams on the server (for example "6.0.4"). */
export async function serverToolVersion(registry: Registry): Promise<string> {
  await registry.checkLoginShell();
  const output = await registry.session.run(commandLine(['incus-simplestreams', '--version']), {
    what: 'Asking the server for its incus-simplestreams version',
    timeoutSeconds: SHORT_COMMAND_TIMEOUT_SECONDS,
  });
  return output.toString('utf8').trim();
}
