/**
 * Pins what src/imap/imapflow-adapter.ts takes from imapflow beyond its documented API. An
 * imapflow upgrade that renames, removes or reshapes any of it fails here, by name, instead of
 * as a login or an APPEND that silently goes wrong.
 */
import { ImapFlow } from 'imapflow';
import { describe, expect, it, vi } from 'vitest';
import {
  compiler,
  createImapFlow,
  encodePath,
  formatDateTime,
  formatFlag,
  normalizePath,
} from '../../src/imap/imapflow-adapter.js';

describe('imapflow internals popsync relies on', () => {
  it('the command compiler quotes, lists and announces literals as pipeline.ts expects', () => {
    const out = compiler(
      {
        tag: 'P1',
        command: 'APPEND',
        attributes: [
          { type: 'ATOM', value: 'INBOX' },
          [{ type: 'ATOM', value: '\\Seen' }],
          { type: 'STRING', value: '01-Jan-2024 10:00:00 +0000' },
        ],
      },
      {},
    );
    expect(out.toString()).toBe('P1 APPEND INBOX (\\Seen) "01-Jan-2024 10:00:00 +0000"');
    const login = compiler(
      {
        tag: 'L',
        command: 'LOGIN',
        attributes: [
          { type: 'STRING', value: 'a"b' },
          { type: 'STRING', value: 'p' },
        ],
      },
      { literalPlus: true },
    );
    expect(login.toString()).toBe('L LOGIN "a\\"b" "p"');
  });

  it('the folder-name and flag helpers keep their signatures and results', () => {
    const conn = {
      namespace: { prefix: '', delimiter: '/' },
      enabled: new Set<string>(),
      capabilities: new Map(),
    } as unknown as ImapFlow;
    expect(normalizePath(conn, 'inbox')).toBe('INBOX');
    expect(encodePath(conn, 'Entwürfe')).toBe('Entw&APw-rfe');
    expect(formatFlag('\\Seen')).toBe('\\Seen');
    expect(formatDateTime(new Date(Date.UTC(2024, 0, 2, 3, 4, 5)))).toMatch(/^ ?2-Jan-2024 \d\d:04:05 [+-]\d{4}$/);
  });

  it("the login step our subclass replaces is the one imapflow's session start calls", () => {
    const proto = ImapFlow.prototype as unknown as Record<string, unknown>;
    for (const name of [
      'authenticate',
      'exec',
      'write',
      'run',
      'setAuthenticationState',
      'startSession',
      'compress',
      'serverBye',
    ])
      expect(typeof proto[name], name).toBe('function');
    // serverBye: the BYE's text only, no [CODE] (our subclass keeps a code that refuses the login).
    expect(String(proto.serverBye)).toMatch(/this\.byeReason = /);
    // startSession: CAPABILITY, STARTTLS, (ID), then this.authenticate(), then NAMESPACE.
    const start = String(proto.startSession);
    expect(start).toMatch(/await this\.authenticate\(\)/);
    expect(start.indexOf('upgradeToSTARTTLS')).toBeLessThan(start.indexOf('this.authenticate()'));
    // Our subclass's run() drops the ID before the login; ENABLE goes with disableAutoEnable.
    expect(start).toMatch(/this\.run\('ID', this\.clientInfo\)/);
    expect(start).toMatch(/if \(!this\.options\.disableAutoEnable\)/);
    // compress() is the session's one use of node:zlib, and our subclass's asks the capability first.
    expect(start).toMatch(/await this\.compress\(\)/);
    expect(String(proto.compress)).toMatch(/zlib\.createDeflateRaw/);
  });

  it("runs imapflow's compress() (which loads node:zlib) only when the server offers COMPRESS=DEFLATE", async () => {
    const proto = ImapFlow.prototype as unknown as { compress(): Promise<void> };
    const compress = vi.spyOn(proto, 'compress').mockResolvedValue(undefined);
    try {
      const client = createImapFlow(
        { host: '127.0.0.1', port: 1, secure: false, auth: { user: 'u', pass: 'p' }, logger: false },
        {
          auth: 'auto',
          host: '127.0.0.1',
          port: 1,
          credentials: async () => ({ user: 'u', secret: 'p', token: false }),
        },
      ) as unknown as { capabilities: Map<string, unknown>; compress(): Promise<void> };
      await client.compress();
      expect(compress).not.toHaveBeenCalled();
      client.capabilities.set('COMPRESS=DEFLATE', true);
      await client.compress();
      expect(compress).toHaveBeenCalledTimes(1);
    } finally {
      compress.mockRestore();
    }
  });

  it('an instance has the state, capability map and transport option the adapter uses', () => {
    const client = createImapFlow(
      {
        host: '127.0.0.1',
        port: 1,
        secure: false,
        auth: { user: 'u', pass: 'p' },
        logger: false,
        transport: { connect: () => undefined as never },
      },
      { auth: 'auto', host: '127.0.0.1', port: 1, credentials: async () => ({ user: 'u', secret: 'p', token: false }) },
    ) as unknown as Record<string, unknown> & { states: Record<string, number>; options: Record<string, unknown> };
    expect(typeof client.states.NOT_AUTHENTICATED).toBe('number');
    expect(typeof client.states.LOGOUT).toBe('number');
    expect(client.state).toBe(client.states.NOT_AUTHENTICATED);
    expect(client.capabilities).toBeInstanceOf(Map);
    // SELECT/EXAMINE LISTs only a path missing from this cache, which our run() fills first.
    expect(client.folders).toBeInstanceOf(Map);
    expect(typeof client.options.transport).toBe('object');
    expect(client.authenticate).not.toBe((ImapFlow.prototype as unknown as Record<string, unknown>).authenticate);
  });
});
