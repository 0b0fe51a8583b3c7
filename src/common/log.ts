/**
 * The log lines of the steps that run on a server. A fleet runs them on several servers at once:
 * each line then starts with the server's name (kept per call chain), so that interleaved lines
 * still say which server they are about. With one server the lines are as they always were.
 */
import * as core from '@actions/core';
import { AsyncLocalStorage } from 'node:async_hooks';

const currentServer = new AsyncLocalStorage<string>();

/** Runs `work` with every line it logs (and each group it opens) labelled with `name`. */
export function onServer<T>(name: string, work: () => Promise<T>): Promise<T> {
  return currentServer.run(name, work);
}

/** The server the current call chain works on, in a fleet. */
export function serverLabel(): string | undefined {
  return currentServer.getStore();
}

function labelled(text: string): string {
  const name = currentServer.getStore();
  return name === undefined ? text : `[${name}] ${text}`;
}

export function info(text: string): void {
  // Every line of a block (a tool's output) says which server it came from.
  core.info(text.split('\n').map(labelled).join('\n'));
}

export function notice(text: string, properties?: core.AnnotationProperties): void {
  core.notice(labelled(text), properties);
}

export function warning(text: string, properties?: core.AnnotationProperties): void {
  core.warning(labelled(text), properties);
}

export function error(text: string, properties?: core.AnnotationProperties): void {
  core.error(labelled(text), properties);
}
