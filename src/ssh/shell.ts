/**
 * The one place where remote shell commands are put together. Every argument is quoted for a
 * POSIX shell (the login shell that sshd runs the command with); nothing is ever pasted in raw.
 */

/** Quotes one argument so that a POSIX shell reads it back as exactly that string. */
export function quoteArg(arg: string): string {
  if (arg.includes('\0')) {
    throw new Error('a shell argument cannot contain a NUL byte');
  }
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) {
    return arg;
  }
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** One simple command: every word quoted. */
export function commandLine(argv: readonly string[]): string {
  if (argv.length === 0) {
    throw new Error('a command needs at least one word');
  }
  return argv.map(quoteArg).join(' ');
}

/** Several commands, each run only when the previous one succeeded. */
export function commandChain(commands: readonly (readonly string[])[]): string {
  return commands.map(commandLine).join(' && ');
}

/**
 * A fixed server-side script run by `sh -c`, with every value as a quoted positional argument:
 * `name` is its $0 (shown by ps and in the shell's own error messages).
 */
export function scriptCommand(script: string, name: string, args: readonly string[]): string {
  return commandLine(['sh', '-c', script, name, ...args]);
}

/**
 * Splits a command line built here (commandLine, scriptCommand) back into its words; undefined
 * for anything else. For the debug log, which shows a script's text once and then its arguments.
 */
export function splitCommandLine(command: string): string[] | undefined {
  const words: string[] = [];
  const word = /([A-Za-z0-9_@%+=:,./-]+|(?:'[^']*'|\\')+)(?: |$)/y;
  while (word.lastIndex < command.length) {
    const start = word.lastIndex;
    const match = word.exec(command);
    if (!match || match.index !== start) return undefined;
    const text = match[1] as string;
    words.push(
      /^[A-Za-z0-9_@%+=:,./-]+$/.test(text)
        ? text
        : text.replace(/'([^']*)'|\\'/g, (_, inner?: string) => inner ?? "'"),
    );
  }
  return words;
}
