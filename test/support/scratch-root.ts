/**
 * Vitest globalSetup: one scratch directory for the whole test run, removed when the run ends.
 *
 * Workers cannot clean up after themselves: vitest ends its worker processes without running
 * their 'exit' handlers, so a temp dir a worker made for itself stayed behind once per worker
 * (438 popsync-home-* had piled up in /tmp). The main process does reach this teardown, so
 * workers make their scratch dirs inside this root (test/support/cli.ts) and it goes with them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's scratch root, made and removed by test/support/scratch-root.ts. */
    scratchRoot: string;
  }
}

export default function setup(project: TestProject): () => void {
  const root = mkdtempSync(join(tmpdir(), 'popsync-tests-'));
  project.provide('scratchRoot', root);
  return () => rmSync(root, { recursive: true, force: true });
}
