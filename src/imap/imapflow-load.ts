/**
 * imapflow, loaded on first need. Its module tree (imapflow, libmime, socks, mailsplit...) is
 * about 200 ms of CPU on a busy machine, one synchronous block once evaluation starts. Nothing
 * before the IMAP connect needs it, so no static import of imapflow-adapter.ts may reach it from
 * the CLI: connectImap starts loading it only once the APPEND connection's socket is being
 * opened, so the load runs while the connect, the greeting and TLS are on the wire (and the
 * POP3 side, started first, is already talking), instead of in front of all of them.
 * test/unit/lazy-load.test.ts counts what the CLI entry loads.
 */
type ImapflowAdapter = typeof import('./imapflow-adapter.js');

let loading: Promise<ImapflowAdapter> | null = null;

/** The adapter (and so imapflow), loaded once per process; every caller shares the one load. */
export function loadImapflow(): Promise<ImapflowAdapter> {
  loading ??= import('./imapflow-adapter.js');
  return loading;
}

export type { ImapflowAdapter };
