/**
 * A plain connection to a port that speaks TLS from the first byte (pop3s on 995, imaps on 993,
 * or any port set up that way) hears nothing: the server waits for a TLS hello, the client for
 * a greeting, until the client's --timeout (60 s by default) ends it as "no greeting".
 *
 * A greeting deadline shorter than --timeout would fail real servers that are slow to greet by
 * design: qmail's tcpserver waits up to 26 s for an ident answer before the POP3 server even
 * starts, and a reverse DNS lookup against a dead resolver costs 5 to 30 s. So the silence is
 * asked about instead: once a plain connection has heard nothing for PROBE_AFTER_MS, a second
 * connection to the same port says hello in TLS. A server that completes that handshake, or
 * refuses it with a TLS alert, speaks TLS there, and the plain connection is ended at once with
 * an error saying so (TLS_ONLY_PORT_CODE, worded by connect-hints.ts). A server that answers the
 * hello in plain text, or not at all, is only slow: the plain connection waits on as before.
 *
 * The probe is a TLS handshake and no more: no command, no credential; it verifies no
 * certificate because it believes nothing but "this port speaks TLS", keeps no session, and
 * closes once it knows. A silent server pays one extra connection; one that greets, nothing.
 */

import net from 'node:net';
import tls from 'node:tls';
import { TLS_ONLY_PORT_CODE, type TlsProbeVerdict } from '../connect-hints.js';

/**
 * Servers greet as soon as they accept: Dovecot, Cyrus and Courier within milliseconds, Gmail
 * and Outlook within a round trip. Two seconds is several round trips of a slow link to a
 * loaded server, and still an answer rather than a wait for the user.
 */
const PROBE_AFTER_MS = 2000;

export interface ProbeTarget {
  host: string;
  port: number;
  /** Bound on the probe itself: a server that takes the hello and says nothing is not TLS-only. */
  timeoutMs: number;
}

/** A TLS alert is a TLS server saying no (to our hello, our SNI, our missing client certificate). */
const TLS_ANSWER = /^ERR_SSL_.*ALERT/;

/**
 * Whether the server at `t` answers a TLS hello in TLS; false once `signal` aborts. The probe
 * never keeps the process alive: a run that ended meanwhile exits without waiting for it.
 */
export async function speaksTls(t: ProbeTarget, signal?: AbortSignal): Promise<boolean> {
  return (await probeTls(t, signal)) === 'tls';
}

/**
 * What a TLS hello to `t` finds; 'no-answer' once `signal` aborts or `t.timeoutMs` passes.
 * `hold`: the probe keeps the process alive, for a caller whose connection is already gone.
 */
function probeTls(t: ProbeTarget, signal?: AbortSignal, hold = false): Promise<TlsProbeVerdict> {
  return new Promise<TlsProbeVerdict>((resolve) => {
    const socket = tls.connect({
      host: t.host,
      port: t.port,
      // SNI as the real connection would send it: some servers alert without it, which still counts.
      ...(net.isIP(t.host) === 0 ? { servername: t.host } : {}),
      rejectUnauthorized: false,
    });
    let settled = false;
    const done = (verdict: TlsProbeVerdict): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      socket.destroy();
      resolve(verdict);
    };
    const abort = (): void => done('no-answer');
    const timer = setTimeout(abort, t.timeoutMs);
    if (!hold) {
      timer.unref();
      socket.unref();
    }
    signal?.addEventListener('abort', abort, { once: true });
    if (signal?.aborted) abort();
    socket.once('secureConnect', () => done('tls'));
    // 'on', not 'once': a second error after the verdict must not go unheard.
    socket.on('error', (e: NodeJS.ErrnoException) => done(verdictOf(e.code ?? '')));
    socket.once('close', () => done('no-answer'));
  });
}

/** OpenSSL's words for bytes that are not TLS at all (a plain-text greeting, an HTTP page). */
const NOT_TLS = /^ERR_SSL_(WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST|UNKNOWN_PROTOCOL)$/;

function verdictOf(code: string): TlsProbeVerdict {
  return TLS_ANSWER.test(code) ? 'tls' : NOT_TLS.test(code) ? 'not-tls' : 'no-answer';
}

/**
 * The last verdict per host and port, for connect-hints.ts to word a connection that then
 * timed out: only what the hello found. Bounded: a batch over many hosts keeps the latest.
 */
const verdicts = new Map<string, TlsProbeVerdict>();
const MAX_VERDICTS = 100;
const probeKey = (host: string, port: number) => `${host}\0${port}`;

/** What the last TLS hello to `host`:`port` found; undefined when its last plain connection sent none. */
export function tlsProbeVerdict(host: string, port: number): TlsProbeVerdict | undefined {
  return verdicts.get(probeKey(host, port));
}

function remember(t: ProbeTarget, verdict: TlsProbeVerdict | undefined): void {
  const key = probeKey(t.host, t.port);
  verdicts.delete(key);
  if (verdict === undefined) return;
  verdicts.set(key, verdict);
  if (verdicts.size > MAX_VERDICTS) verdicts.delete(verdicts.keys().next().value!);
}

/** The error a silent plain connection ends with when its port answered the probe in TLS. */
class TlsOnlyPort extends Error {
  readonly code = TLS_ONLY_PORT_CODE;
}

/**
 * Asks `t` with a TLS hello now: the error a plain connection to it ends with if it speaks TLS
 * from the first byte, or null. For a plain connection the server dropped before greeting,
 * after a command was written ahead of the greeting (pop3/connection.ts).
 */
export async function tlsOnlyPort(t: ProbeTarget): Promise<Error | null> {
  // Held: nothing else may be keeping the process alive until the connection's failure is told.
  const verdict = await probeTls(t, undefined, true);
  remember(t, verdict);
  return verdict === 'tls'
    ? new TlsOnlyPort(
        'the server closed the plain connection before greeting; a TLS hello to the same port was answered in TLS',
      )
    : null;
}

/**
 * Watches a plain socket from its connect on: if it has received no byte PROBE_AFTER_MS later
 * and its port speaks TLS, the socket is destroyed with a TLS_ONLY_PORT_CODE error, which its
 * owner hears as any other socket error. bytesRead is read rather than listening for 'data',
 * which would start the flow of a socket whose greeting must wait unread (early-socket.ts).
 */
export function watchForTlsOnlyPort(
  socket: net.Socket,
  t: ProbeTarget,
  { afterMs = PROBE_AFTER_MS, probe = probeTls }: { afterMs?: number; probe?: typeof probeTls } = {},
): void {
  let timer: NodeJS.Timeout | undefined;
  // Ends the probe with the connection it asks about: it must not outlive it.
  const ended = new AbortController();
  const silent = (): boolean => !socket.destroyed && socket.bytesRead === 0;
  socket.once('connect', () => {
    // A verdict of an earlier connection says nothing about this one.
    remember(t, undefined);
    timer = setTimeout(() => {
      if (!silent()) return;
      void probe(t, ended.signal).then((verdict) => {
        remember(t, verdict);
        if (verdict === 'tls' && silent())
          socket.destroy(
            new TlsOnlyPort(
              `no plain-text greeting within ${afterMs / 1000} s; a TLS hello to the same port ` +
                'was answered in TLS',
            ),
          );
      });
    }, afterMs);
    timer.unref();
  });
  socket.once('close', () => {
    clearTimeout(timer);
    ended.abort();
  });
}
