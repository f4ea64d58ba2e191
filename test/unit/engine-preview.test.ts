/**
 * The dry run (engine/preview.ts) over in-memory servers: it identifies messages as the run
 * does (no UIDL, renumbered UIDLs) and never calls anything with a side effect (RETR, DELE,
 * CREATE, APPEND): the fakes throw on every method outside the read-only set.
 */
import { describe, expect, it } from 'vitest';
import { previewRun } from '../../src/engine/preview.js';
import { headerHash } from '../../src/engine/identity.js';
import { PopsyncError } from '../../src/errors.js';
import type { FolderStatus, ImapSink } from '../../src/imap/types.js';
import type { JournalRow } from '../../src/journal/types.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { compileRouting, engineRouter } from '../../src/mapping/rules.js';
import type { Pop3Session } from '../../src/pop3/types.js';

const mail = (id: string, h = '') => Buffer.from(`Message-ID: <${id}@t>\r\nSubject: ${id}\r\n${h}\r\nbody ${id}\r\n`);

/** Only the given methods exist; any other one is a side effect (or a read the dry run must not make). */
function only<T extends object>(methods: Partial<T>, calls: string[]): T {
  return new Proxy(methods as T, {
    get(target, key) {
      if (key in target) return target[key as keyof T];
      if (key === 'then') return undefined;
      return () => {
        calls.push(String(key));
        throw new Error(`the dry run called ${String(key)}`);
      };
    },
  });
}

function source(messages: Array<{ uidl?: string; body: Buffer }>, uidl: boolean, calls: string[]): Pop3Session {
  return only<Pop3Session>(
    {
      list: async () => messages.map((m, i) => ({ n: i + 1, size: m.body.length })),
      uidl: async () => {
        if (!uidl) throw new PopsyncError('server', 'POP3 server refused UIDL', { serverResponse: '-ERR' });
        return messages.map((m, i) => ({ n: i + 1, uidl: m.uidl! }));
      },
      top: async (n: number) => messages[n - 1]!.body,
      quit: async () => undefined,
      leave: () => undefined,
      destroy: () => undefined,
    },
    calls,
  );
}

function sink(folders: string[], calls: string[]): ImapSink {
  return only<ImapSink>(
    {
      capabilities: new Set(['IMAP4REV1', 'APPENDLIMIT=1000']),
      status: async (path: string): Promise<FolderStatus> => {
        if (!folders.includes(path)) throw new PopsyncError('server', `IMAP folder "${path}" does not exist`);
        return { path, uidValidity: 1n, uidNext: 1 };
      },
      close: async () => undefined,
    },
    calls,
  );
}

function row(uidl: string, body: Buffer, folder: string): JournalRow {
  return {
    account: 'a',
    uidl,
    state: 'done',
    size: body.length,
    sha256: null,
    messageId: null,
    folder,
    destUidValidity: 1n,
    destUidNext: 1,
    destUid: 1,
    attempts: 1,
    lastError: null,
    firstSeenAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
    copiedAt: '2026-01-01T00:00:00Z',
    provenance: null,
    headerHash: headerHash(body),
    listSize: body.length,
    deletedAt: null,
    vanishedAt: null,
  };
}

const route = engineRouter(
  compileRouting({
    defaultFolder: 'Archive',
    flags: [],
    seen: [],
    arrivalDate: true,
    rules: [
      {
        name: 'lists',
        match: { headers: [{ header: 'list-id', patterns: [{ kind: 'glob', source: '*', caseSensitive: false }] }] },
        folder: 'Lists',
        flags: [],
      },
    ],
  }),
);

function recordingLogger(warnings: string[]): Logger {
  const l: Logger = {
    ...silentLogger,
    warn: (a, b) => void warnings.push(typeof a === 'string' ? a : (b ?? '')),
    child: () => l,
  };
  return l;
}

describe('the dry run', () => {
  it('without UIDL: keys by headers as the run does, says so once, and only reads', async () => {
    const calls: string[] = [];
    const warnings: string[] = [];
    const copied = mail('a');
    const p = await previewRun({
      rows: new Map([[`header:${headerHash(copied)}:${copied.length}#1`, row('x', copied, 'Archive')]]),
      openSource: async () => source([{ body: copied }, { body: mail('b', 'List-Id: <l.example>\r\n') }], false, calls),
      openSink: async () => sink(['Archive'], calls),
      route,
      logger: recordingLogger(warnings),
      now: new Date('2026-02-01T00:00:00Z'),
    });
    expect(calls).toEqual([]);
    expect(p.identity).toBe('header-hash');
    expect(warnings.filter((w) => /does not support UIDL/.test(w))).toHaveLength(1);
    expect(p.listing.map((m) => m.uidl)).toEqual([
      `header:${headerHash(copied)}:${copied.length}#1`,
      `header:${headerHash(mail('b', 'List-Id: <l.example>\r\n'))}:${mail('b', 'List-Id: <l.example>\r\n').length}#1`,
    ]);
    expect(p.plan.skip.map((m) => m.n)).toEqual([1]);
    expect(p.plan.copy.map((m) => m.n)).toEqual([2]);
    const routed = p.routed.get(2);
    expect(routed && 'routing' in routed ? routed.routing.folder : routed).toBe('Lists');
    // The folder the copy went to exists; the new one would be created.
    expect([...p.existingFolders]).toEqual(['Archive']);
    expect(p.capabilities.has('APPENDLIMIT=1000')).toBe(true);
  });

  it('opens the destination while the source is reached and listed, as a run does', async () => {
    const calls: string[] = [];
    const events: string[] = [];
    const listed = source([{ uidl: 'u1', body: mail('a') }], true, calls);
    await previewRun({
      rows: new Map(),
      openSource: async () => {
        events.push('source opened');
        return {
          ...listed,
          uidl: async () => {
            await new Promise((resolve) => setTimeout(resolve, 10));
            events.push('UIDL answered');
            return listed.uidl();
          },
        };
      },
      openSink: async () => {
        events.push('destination opening');
        return sink(['Archive'], calls);
      },
      route,
      logger: silentLogger,
      now: new Date('2026-02-01T00:00:00Z'),
    });
    expect(calls).toEqual([]);
    expect(events.indexOf('destination opening')).toBeLessThan(events.indexOf('UIDL answered'));
  });

  it("reports the source's failure, also over the destination's, and closes a destination it opened", async () => {
    const refused = new PopsyncError('auth', 'POP3 login refused', {
      serverResponse: '-ERR [AUTH] Authentication failed',
    });
    let closed = 0;
    const opened = { ...sink(['Archive'], []), close: async () => void closed++ };
    const run = (openSink: () => Promise<ImapSink>) =>
      previewRun({
        rows: new Map(),
        openSource: async () => Promise.reject(refused),
        openSink,
        route,
        logger: silentLogger,
        now: new Date('2026-02-01T00:00:00Z'),
      });
    await expect(run(async () => opened)).rejects.toBe(refused);
    expect(closed).toBe(1);
    const imapRefused = new PopsyncError('auth', 'IMAP login refused');
    await expect(run(async () => Promise.reject(imapRefused))).rejects.toBe(refused);
  });

  it('after a renumbering: copied messages are recognised under their new UIDLs, the journal untouched', async () => {
    const calls: string[] = [];
    const one = mail('one');
    const two = mail('two');
    const rows = new Map([
      ['old-1', row('old-1', one, 'Archive')],
      ['old-2', row('old-2', two, 'Archive')],
    ]);
    const p = await previewRun({
      rows,
      openSource: async () =>
        source(
          [
            { uidl: 'new-1', body: one },
            { uidl: 'new-2', body: two },
            { uidl: 'new-3', body: mail('three') },
          ],
          true,
          calls,
        ),
      openSink: async () => sink(['Archive'], calls),
      route,
      logger: silentLogger,
      now: new Date('2026-02-01T00:00:00Z'),
    });
    expect(calls).toEqual([]);
    expect(p.plan.skip.map((m) => m.uidl)).toEqual(['new-1', 'new-2']);
    expect(p.plan.copy.map((m) => m.uidl)).toEqual(['new-3']);
    expect(p.rows.get('new-1')?.folder).toBe('Archive');
    // The rows handed in are the journal's: the dry run applies the rekeys to its own copy.
    expect([...rows.keys()]).toEqual(['old-1', 'old-2']);
  });
});
