/**
 * Vitest globalSetup: one scratch directory for the whole test run, removed when the run ends.
 *
 * Workers cannot clean up after themselves: vitest ends its worker processes without running
 * their 'exit' handlers, so a temp dir a worker made for itself stayed behind once per worker
 * (438 popsync-home-* had piled up in /tmp). The main process does reach this teardown, so
 * workers make their scratch dirs inside this root (test/support/cli.ts) and it goes with them.
 *
 * A run that is itself killed (SIGKILL, a CI timeout) never reaches the teardown: the root is
 * named for the vitest process, and the next run removes the roots of processes that are gone.
 * The root is made only by the first worker that needs it, so a killed unit-only run leaves
 * nothing.
 *
 * XDG_CACHE_HOME points into the root too, so no test writes the code cache (src/code-cache.ts)
 * of the user running the suite.
 */
import { readdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { processAlive } from '../../src/journal/lock.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's scratch root (made on first use), removed by test/support/scratch-root.ts. */
    scratchRoot: string;
  }
}

const PREFIX = 'popsync-tests-';

export default function setup(project: TestProject): () => void {
  removeRootsOfEndedRuns();
  const root = join(tmpdir(), `${PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
  project.provide('scratchRoot', root);
  // Tests that hand a child this process's environment (and so the user's HOME) would write
  // popsync's code cache into the user's ~/.cache/popsync, one file per build: point it here.
  // The forks that run the tests inherit this environment.
  process.env.XDG_CACHE_HOME = join(root, 'xdg-cache');
  return () => rmSync(root, { recursive: true, force: true });
}

function removeRootsOfEndedRuns(): void {
  for (const name of readdirSync(tmpdir())) {
    const pid = new RegExp(`^${PREFIX}(\\d+)-[0-9a-f]+$`).exec(name)?.[1];
    if (pid !== undefined && !processAlive(Number(pid))) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}
