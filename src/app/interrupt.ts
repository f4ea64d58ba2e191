/**
 * What SIGINT/SIGTERM does to a running account, from outside the engine.
 *
 * The engine stops at the next batch boundary when its signal is aborted, which is right for
 * a batch being stored. But before anything is stored it may be waiting for a server: a RETR,
 * a LIST, a greeting, or the reconnect backoff. Those waits have no side effect on either
 * server (fetching changes nothing; a DELE is real only after QUIT's +OK), so on an interrupt
 * they are ended at once instead of running into the --timeout:
 * - POP3 sessions are dropped without QUIT (the server deletes nothing);
 * - an IMAP connect in progress is abandoned (and the late session closed); an IMAP session
 *   already open is left alone, so a batch being appended finishes as promised;
 * - the backoff sleep between reconnects returns at once.
 * Whatever error the cut causes is then reported as what it is: an interruption (exit 130).
 */
import { DEFAULT_APPEND_WINDOW } from '../defaults.js';
import { PopsyncError, isPopsyncError } from '../errors.js';
import type { ImapSink } from '../imap/types.js';
import type { Pop3Session } from '../pop3/types.js';

/**
 * Said when the first SIGINT/SIGTERM reaches a run that stores mail. The copier keeps up to
 * DEFAULT_APPEND_WINDOW batches outstanding on the APPEND connection and settles every one of
 * them before the run stops (copier.ts), while the batch being received is dropped: "the batch
 * in flight" promised one where two may finish.
 */
export function interruptNotice(signal: string): string {
  return (
    `popsync: ${signal}: finishing the batches already being stored (at most ${DEFAULT_APPEND_WINDOW} per ` +
    'account), then stopping (press Ctrl-C again to stop at once)'
  );
}

const INTERRUPTED_MESSAGE = 'interrupted; the journal is consistent, run again to resume';

function interruptedError(): PopsyncError {
  return new PopsyncError('interrupted', INTERRUPTED_MESSAGE);
}

/** The engine's `sleep`: ends early (rejecting as interrupted) when `signal` aborts. */
export function abortableSleep(signal: AbortSignal | undefined): (ms: number) => Promise<void> {
  return (ms) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(interruptedError());
      const onAbort = () => {
        clearTimeout(timer);
        reject(interruptedError());
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
}

export interface InterruptibleConnections {
  openSource(): Promise<Pop3Session>;
  openSink(): Promise<ImapSink>;
  /** Stops listening to the signal (the run is over). */
  dispose(): void;
}

/**
 * The account's connection openers, cut as described above when `signal` aborts. The engine
 * uses one POP3 session at a time (a new one per reconnect), so only the latest is tracked.
 */
export function interruptible(
  open: { openSource(): Promise<Pop3Session>; openSink(): Promise<ImapSink> },
  signal: AbortSignal | undefined,
): InterruptibleConnections {
  if (!signal) return { openSource: () => open.openSource(), openSink: () => open.openSink(), dispose: () => {} };
  let current: Pop3Session | null = null;
  const onAbort = () => current?.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  return {
    async openSource() {
      if (signal.aborted) throw interruptedError();
      current = await abandonedOnAbort(open.openSource(), signal, (late) => late.destroy());
      return current;
    },
    openSink() {
      if (signal.aborted) return Promise.reject(interruptedError());
      return abandonedOnAbort(open.openSink(), signal, (late) => void late.close().catch(() => undefined));
    },
    dispose: () => signal.removeEventListener('abort', onAbort),
  };
}

function abandonedOnAbort<T>(pending: Promise<T>, signal: AbortSignal, dispose: (late: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const onAbort = () => {
      settled = true;
      reject(interruptedError());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    pending.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        if (settled) dispose(v);
        else resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (!settled) reject(e);
      },
    );
  });
}

/**
 * After an interrupt, a lost connection is the cut above, not a network failure, and a lock
 * refusal is the end of a --wait the user cut short: report the interruption. Anything else
 * (a refused login, a bad journal) keeps its own meaning.
 */
export function asInterrupted(e: unknown, signal: AbortSignal | undefined): unknown {
  if (!signal?.aborted || !isPopsyncError(e)) return e;
  // 'locked': the interrupt ended a --wait for another run's lock.
  return e.kind === 'connection' || e.kind === 'temporary' || e.kind === 'locked' ? interruptedError() : e;
}
