/**
 * Whom a TLS connection trusts and whom it says it is talking to, for every socket popsync
 * opens (POP3, imapflow's control connection, our own APPEND connection), so the three can
 * never disagree again. They did: the POP3 side kept NODE_EXTRA_CA_CERTS when a CA file was
 * given and the IMAP side silently dropped it.
 *
 * The rule (README "Private CAs"): a `--pop-ca-file`/`--imap-ca-file` CA is trusted on top of
 * what the process already trusts, which is Node's root store plus NODE_EXTRA_CA_CERTS. Node's
 * own `ca` option replaces all of that (checked on Node 20), so with a CA file the list is
 * rebuilt here; without one, `ca` is left out and Node's defaults apply unchanged.
 */

import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

/** Where a TLS connection goes and what it checks; the same for every protocol. */
export interface TlsTarget {
  host: string;
  port: number;
  /** Extra trusted CAs (PEM), added to the usual ones. */
  ca?: ReadonlyArray<string | Buffer> | undefined;
  /** false only when the user explicitly asked for it (--pop-insecure, --imap-insecure). */
  rejectUnauthorized?: boolean | undefined;
}

/** What trustedCas reads besides its argument; tests pass their own. */
export interface TrustSources {
  env?: Readonly<Record<string, string | undefined>>;
  roots?: readonly string[];
  readFile?: (path: string) => Buffer;
}

/** Node's roots, then NODE_EXTRA_CA_CERTS, then the extra CAs: what a CA file adds to. */
export function trustedCas(extra: ReadonlyArray<string | Buffer>, from: TrustSources = {}): Array<string | Buffer> {
  return [...(from.roots ?? tls.rootCertificates), ...addedCas(extra, from)];
}

/** What a CA file adds to Node's roots: NODE_EXTRA_CA_CERTS (which a copy of them lacks), then the file. */
export function addedCas(extra: ReadonlyArray<string | Buffer>, from: TrustSources = {}): Array<string | Buffer> {
  const cas: Array<string | Buffer> = [];
  const envFile = (from.env ?? process.env).NODE_EXTRA_CA_CERTS;
  if (envFile) {
    try {
      cas.push((from.readFile ?? readFileSync)(envFile));
    } catch {
      // Node already warned about an unreadable file at startup; it trusts nothing from it either.
    }
  }
  return [...cas, ...extra];
}

/** The options every tls.connect of popsync gets: trust, verification and SNI. */
export function tlsOptions(t: TlsTarget, from: TrustSources = {}): tls.ConnectionOptions {
  return {
    host: t.host,
    // SNI must be a host name (RFC 6066 §3); Node warns when given an IP. Verification still
    // checks the certificate against `host`, IP or not.
    ...(net.isIP(t.host) === 0 ? { servername: t.host } : {}),
    ...(t.ca && t.ca.length > 0 ? { ca: trustedCas(t.ca, from) } : {}),
    rejectUnauthorized: t.rejectUnauthorized !== false,
  };
}
