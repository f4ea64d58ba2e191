import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writePrivateFile } from '../../src/cli/private-file.js';
import { writeAtomically } from '../../src/cli/report-file.js';
import { PopsyncError } from '../../src/errors.js';

let dir: string;
let victim: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-private-'));
  // The file an attacker wants overwritten: someone else's, here our own stand-in.
  victim = join(dir, 'victim');
  writeFileSync(victim, 'precious\n', { mode: 0o600 });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mode = (p: string) => statSync(p).mode & 0o777;

describe('writing a report or plan file', () => {
  it('is not redirected by a symlink planted at the name the old writer used (<path>.<pid>.tmp)', () => {
    const report = join(dir, 'report.html');
    symlinkSync(victim, `${report}.${process.pid}.tmp`);
    writeAtomically(report, '<p>subjects and senders</p>');
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(readFileSync(report, 'utf8')).toBe('<p>subjects and senders</p>');
  });

  it('never follows a symlink planted at its temporary name: it takes another name', () => {
    const report = join(dir, 'report.csv');
    const trapped = join(dir, 'trap.tmp');
    symlinkSync(victim, trapped);
    writePrivateFile(report, 'uidl,subject\n', { tempNames: () => [trapped, join(dir, 'second.tmp')] });
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(readFileSync(report, 'utf8')).toBe('uidl,subject\n');
    // The attacker's link is theirs to clean up; our own temporary file is gone.
    expect(readdirSync(dir).sort()).toEqual(['report.csv', 'trap.tmp', 'victim']);
  });

  it('fails rather than write anywhere when every temporary name is taken', () => {
    const report = join(dir, 'report.csv');
    const trapped = join(dir, 'trap.tmp');
    symlinkSync(victim, trapped);
    expect(() => writePrivateFile(report, 'x', { tempNames: () => [trapped] })).toThrow(/EEXIST/);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
  });

  it('replaces a symlink at the report path itself instead of writing through it', () => {
    const report = join(dir, 'report.md');
    symlinkSync(victim, report);
    writeAtomically(report, '# plan\n');
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(lstatSync(report).isSymbolicLink()).toBe(false);
    expect(readFileSync(report, 'utf8')).toBe('# plan\n');
  });

  it('is mode 0600, also when it replaces a file others could read', () => {
    const report = join(dir, 'report.json');
    writeFileSync(report, 'old', { mode: 0o644 });
    writeAtomically(report, '{}');
    expect(mode(report)).toBe(0o600);
    expect(readFileSync(report, 'utf8')).toBe('{}');
  });

  it('leaves no temporary file behind when the rename fails, and says why as a usage error', () => {
    const report = join(dir, 'a-folder');
    mkdirSync(report);
    writeFileSync(join(report, 'inside'), '');
    let err: unknown;
    try {
      writeAtomically(report, 'x');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('usage');
    expect((err as PopsyncError).message).toMatch(/^cannot write .*a-folder: E(ISDIR|NOTEMPTY|EXIST)/);
    expect(readdirSync(dir).sort()).toEqual(['a-folder', 'victim']);
  });
});
