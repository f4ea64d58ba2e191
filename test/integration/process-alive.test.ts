/**
 * processAlive against real processes: this one, and a child that has exited and been reaped.
 * Spawns node, so it lives in the integration tier, not unit.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { processAlive } from '../../src/journal/lock.js';

describe('processAlive', () => {
  it('knows this process, a finished one, and a zombie', () => {
    expect(processAlive(process.pid)).toBe(true);
    const done = spawnSync(process.execPath, ['-e', '0']);
    expect(processAlive(done.pid!)).toBe(false);
    expect(processAlive(0)).toBe(false);
  });
});
