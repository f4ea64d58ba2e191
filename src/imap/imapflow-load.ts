/**
 * imapflow, loaded on first need. Its module tree (imapflow, libmime, mailsplit...) is one
 * synchronous block of CPU once evaluation starts: about 200 ms as separate files on a busy
 * machine, 40-55 ms as the bundle's lazy chunk (lab/bundle.ts). Nothing before the IMAP
 * connect needs it, so no static import of imapflow-adapter.ts may reach it from the CLI:
 * connectImap starts loading it only once the APPEND connection's socket is being opened, so
 * the load runs while the connect, the greeting and TLS are on the wire (and the POP3 side,
 * started first, is already talking), instead of in front of all of them.
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
