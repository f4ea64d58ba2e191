/**
 * engine/outcomes.ts: APPEND outcomes held per batch and journaled as one step when the batch
 * ends; held UIDs count as taken across the batches outstanding at once; what follows an
 * outcome runs only after its commit.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OutcomeJournal, type ReusedUid } from '../../src/engine/outcomes.js';
import { configureCrashHook } from '../../src/journal/crash-hook.js';
import { Journal } from '../../src/journal/journal.js';
import type { AppendSettlement } from '../../src/journal/types.js';
import { intent } from '../support/journal-item.js';

const A = 'alice';
let dir: string;
let journal: Journal;

const item = intent;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-outcomes-'));
  journal = Journal.open(join(dir, 'j.sqlite'), { source: 'alice@pop.example.net:995' });
  journal.beginAppend(A, ['a', 'b', 'c', 'd'].map(item));
});

/** The caller's error for a UID the journal already gives another message. */
class Reused extends Error {}
const reused: ReusedUid = (s, owner) => new Reused(`UID ${s.destUid} of ${s.uidl} holds ${owner}`);

/** The tests tag each outcome with what to run once it is committed. */
const run = (_: AppendSettlement, then: () => void): void => then();

afterEach(() => {
  configureCrashHook({ killAt: null, stepsFile: null });
  journal.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('OutcomeJournal', () => {
  it("hands each committed outcome to the group's function with the tag it was added with, in order", () => {
    journal.recordFolder(A, 'INBOX', 7n);
    const outcomes = new OutcomeJournal(journal, A);
    const seen: Array<[string, number, string]> = [];
    const g = outcomes.group('INBOX', reused, (s, tag: number) =>
      seen.push([s.uidl, tag, journal.get(A, s.uidl)!.state]),
    );
    g.add({ uidl: 'b', ok: false, error: 'too big' }, 7);
    g.add({ uidl: 'a', ok: true, destUidValidity: 7n, destUid: 3 }, 2);
    expect(seen).toEqual([]);
    g.close();
    expect(seen).toEqual([
      ['b', 7, 'failed'],
      ['a', 2, 'done'],
    ]);
  });

  it('writes a batch as one step when it closes, and runs what follows only after the commit', () => {
    const stepsFile = join(dir, 'steps');
    configureCrashHook({ killAt: null, stepsFile });
    journal.recordFolder(A, 'INBOX', 7n);
    const before = Number(readFileSync(stepsFile, 'utf8'));
    const outcomes = new OutcomeJournal(journal, A);
    const g = outcomes.group('INBOX', reused, run);
    const after: string[] = [];
    g.add({ uidl: 'a', ok: true, destUidValidity: 7n, destUid: 1 }, () => after.push(journal.get(A, 'a')!.state));
    g.add({ uidl: 'b', ok: false, error: 'too big' }, () => after.push(journal.get(A, 'b')!.state));
    expect(journal.get(A, 'a')?.state).toBe('appending');
    expect(after).toEqual([]);
    g.close();
    expect(after).toEqual(['done', 'failed']);
    expect(Number(readFileSync(stepsFile, 'utf8'))).toBe(before + 1);
    // Closed with nothing held: no step.
    outcomes.group('INBOX', reused, run).close();
    expect(Number(readFileSync(stepsFile, 'utf8'))).toBe(before + 1);
  });

  it('counts a held UID as taken in every open group of the folder, until it is written', () => {
    const outcomes = new OutcomeJournal(journal, A);
    const first = outcomes.group('INBOX', reused, run);
    const second = outcomes.group('INBOX', reused, run);
    first.add({ uidl: 'a', ok: true, destUidValidity: 7n, destUid: 5 }, () => {});
    expect(outcomes.ownerOf('INBOX', 7n, 5)).toBe('a');
    expect(outcomes.ownerOf('INBOX', 8n, 5)).toBeUndefined();
    expect(outcomes.ownerOf('Other', 7n, 5)).toBeUndefined();
    second.add({ uidl: 'b', ok: true, destUidValidity: 7n, destUid: 6 }, () => {});
    expect(outcomes.ownerOf('INBOX', 7n, 6)).toBe('b');
    first.close();
    // Written: the journal knows the owner from now on, the group no longer does.
    expect(outcomes.ownerOf('INBOX', 7n, 5)).toBeUndefined();
    expect(journal.uidOwner(A, 'INBOX', 7n, 5)).toBe('a');
    outcomes.flushAll();
    expect(journal.get(A, 'b')).toMatchObject({ state: 'done', destUid: 6 });
  });

  it('leaves the whole batch appending when the journal refuses one of its outcomes', () => {
    const outcomes = new OutcomeJournal(journal, A);
    const g = outcomes.group('INBOX', reused, run);
    let ran = 0;
    g.add({ uidl: 'a', ok: true, destUidValidity: 7n, destUid: 9 }, () => ran++);
    g.add({ uidl: 'b', ok: true, destUidValidity: 7n, destUid: 9 }, () => ran++);
    expect(() => g.close()).toThrow(/already belongs to message a/);
    expect(ran).toBe(0);
    expect(journal.get(A, 'a')?.state).toBe('appending');
    expect(journal.get(A, 'b')?.state).toBe('appending');
  });

  it("ends a batch with the caller's error at a UID the journal gives another message, writing the ones before", () => {
    journal.recordFolder(A, 'INBOX', 7n);
    journal.settleAppends(A, [{ uidl: 'a', ok: true, destUidValidity: 7n, destUid: 3 }]);
    const outcomes = new OutcomeJournal(journal, A);
    const g = outcomes.group('INBOX', reused, run);
    const ran: string[] = [];
    g.add({ uidl: 'b', ok: true, destUidValidity: 7n, destUid: 4 }, () => ran.push('b'));
    // No UID at all: nothing is taken.
    g.add({ uidl: 'c', ok: true, destUidValidity: 7n, destUid: null }, () => ran.push('c'));
    g.add({ uidl: 'd', ok: true, destUidValidity: 7n, destUid: 3 }, () => ran.push('d'));
    expect(() => g.close()).toThrow(Reused);
    expect(() => outcomes.group('INBOX', reused, run).close()).not.toThrow();
    expect(ran).toEqual(['b', 'c']);
    expect(journal.get(A, 'b')).toMatchObject({ state: 'done', destUid: 4 });
    expect(journal.get(A, 'c')).toMatchObject({ state: 'done', destUid: null });
    expect(journal.get(A, 'd')?.state).toBe('appending');
    expect(journal.get(A, 'a')).toMatchObject({ state: 'done', destUid: 3 });
  });

  it('looks UID owners up only for a batch the journal refuses, once per UIDVALIDITY, not once per outcome', () => {
    journal.recordFolder(A, 'INBOX', 7n);
    const outcomes = new OutcomeJournal(journal, A);
    const reads: number[][] = [];
    const uidOwners = journal.uidOwners;
    Object.assign(journal, {
      uidOwners: (...args: Parameters<Journal['uidOwners']>) => {
        reads.push([...args[3]]);
        return uidOwners(...args);
      },
    });
    const g = outcomes.group('INBOX', reused, run);
    for (const [i, uidl] of ['a', 'b'].entries())
      g.add({ uidl, ok: true, destUidValidity: 7n, destUid: 10 + i }, () => {});
    g.add({ uidl: 'c', ok: false, error: 'too big' }, () => {});
    g.close();
    expect(reads).toEqual([]);
    expect(journal.counts(A)).toMatchObject({ done: 2, failed: 1 });
    // UID 11 is b's copy: the journal refuses the batch, and one read finds why.
    const again = outcomes.group('INBOX', reused, run);
    again.add({ uidl: 'd', ok: true, destUidValidity: 7n, destUid: 12 }, () => {});
    again.add({ uidl: 'e', ok: true, destUidValidity: 7n, destUid: 11 }, () => {});
    journal.beginAppend(A, [item('e')]);
    expect(() => again.close()).toThrow(Reused);
    expect(reads).toEqual([[12, 11]]);
    expect(journal.get(A, 'd')).toMatchObject({ state: 'done', destUid: 12 });
    expect(journal.get(A, 'e')?.state).toBe('appending');
  });
});
