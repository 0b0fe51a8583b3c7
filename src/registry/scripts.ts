/**
 * Every script this action runs on the registry server, in one place. Each is a shell file in
 * registry/server/ (its header says what it guarantees), embedded by scripts/embed.ts,
 * and run by `sh -c` with every value as a quoted positional argument (ssh/shell.ts
 * `scriptCommand`), so no input is ever parsed as shell code; file contents travel over stdin. A
 * unit test runs `sh -n` (dash and bash) and shellcheck over each as it runs.
 *
 * The server-side layout they work on is described in registry/layout.ts.
 */
import { SERVER_SCRIPT_TEXTS } from './server-scripts.js';

export interface ServerScript {
  /** The script's $0: shown by ps on the server and in the shell's own error messages. */
  name: string;
  text: string;
}

const script = (file: keyof typeof SERVER_SCRIPT_TEXTS): ServerScript => ({
  name: `lxc-publish-${file}`,
  text: SERVER_SCRIPT_TEXTS[file],
});

/** server/registry-lock.sh: the registry lock, with the live index read under it. */
export const REGISTRY_LOCK = script('registry-lock');
/** server/image-lock.sh: an image's upload lock, with what earlier attempts left. */
export const IMAGE_LOCK = script('image-lock');
/** server/reset.sh: one file's upload started again from nothing. */
export const RESET_UPLOAD = script('reset');
/** server/write.sh: one of the upload's parallel writers. */
export const WRITE_BLOCKS = script('write');
/** server/read.sh: the live index, and the checks before a change. */
export const READ_LIVE_INDEX = script('read');
/** server/stage.sh: incus-simplestreams add in a staging tree, and the staged files' sha256. */
export const STAGE = script('stage');
/** server/delta.sh: vcdiff deltas made and checked. */
export const DELTA = script('delta');
/** server/commit.sh: a new index made live, whole or not at all; what dead runs left, removed. */
export const COMMIT = script('commit');
/** server/fenced.sh: a command run under a lease (convert-command, a clean-up). */
export const FENCED = script('fenced');
/** server/inspect.sh: the registry's files, state and permissions, for the check sub-action. */
export const INSPECT = script('inspect');
/** server/export.sh: (part of) a file of the registry, for a bucket's copy. */
export const EXPORT = script('export');
/** server/hash.sh: the files the index names, their sizes and (within a time) sha256, for the check. */
export const HASH = script('hash');

/** What server/read.sh prints on stderr when xdelta3 is missing (a line no login shell prints). */
export const NO_XDELTA3_LINE = 'lxc-publish: no xdelta3 on the PATH';

/** Exit statuses of server/read.sh, each a case the action explains. */
export const READ_LIVE_EXIT = {
  noIndexYet: 3,
  noSimplestreamsDir: 4,
  noTool: 5,
  uploadDirNotWritable: 6,
  simplestreamsDirNotWritable: 7,
  writableByOthers: 8,
} as const;

/** Every script above, for the test that checks them with sh -n and shellcheck. */
export const ALL_SCRIPTS: readonly ServerScript[] = [
  REGISTRY_LOCK,
  IMAGE_LOCK,
  RESET_UPLOAD,
  WRITE_BLOCKS,
  READ_LIVE_INDEX,
  STAGE,
  DELTA,
  COMMIT,
  FENCED,
  INSPECT,
  HASH,
];
