/**
 * The run use case: one account copied under its lock, by the engine, with the account's
 * routing. `plan-account.ts` is the same account with the side effects switched off.
 *
 * An interrupt (SIGINT/SIGTERM through `signal`) ends a wait for a server at once instead of
 * at --timeout (interrupt.ts), and whatever error the cut caused is reported as an interruption.
 */
import { withLockedJournal } from '../engine/lock.js';
import { runEngine, type EngineOptions } from '../engine/run.js';
import type { RunResult } from '../engine/types.js';
import { accountRouting, type AccountEndpoints, type AccountSettings } from './account.js';
import { abortableSleep, asInterrupted, interruptible } from './interrupt.js';

/** What a command adds to the engine run beyond the account itself. */
export type RunOptions = Omit<
  EngineOptions,
  | 'account'
  | 'sourceDisplay'
  | 'destination'
  | 'journal'
  | 'openSource'
  | 'openSink'
  | 'route'
  | 'batchMessages'
  | 'batchBytes'
  | 'retry'
  | 'skipLargerThan'
> & {
  /** --wait: seconds to wait for another run's lock. */
  waitSeconds?: number;
};

export async function runAccount(
  account: AccountEndpoints,
  settings: AccountSettings,
  o: RunOptions,
): Promise<RunResult> {
  const { waitSeconds, ...engine } = o;
  const { openSink, route } = accountRouting(settings.routing, account.openSink);
  const cuts = interruptible({ openSource: account.openSource, openSink }, o.signal);
  o.logger.debug({ journal: account.journalPath }, 'journal');
  // The account lock: two overlapping runs on one account must never both copy.
  return withLockedJournal(
    account.journalPath,
    account.sourceKey,
    {
      command: o.command,
      logger: o.logger,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.now ? { now: o.now } : {}),
      ...(waitSeconds === undefined ? {} : { waitSeconds }),
    },
    (journal) =>
      runEngine({
        ...engine,
        account: account.sourceKey,
        sourceDisplay: account.pop.display,
        destination: account.imap.display,
        journal,
        openSource: () => cuts.openSource(),
        openSink: () => cuts.openSink(),
        sleep: engine.sleep ?? abortableSleep(o.signal),
        route,
        batchMessages: settings.batchMessages,
        batchBytes: settings.batchBytes,
        retry: { maxAttempts: settings.reconnectAttempts },
        skipLargerThan: settings.routing.skipLargerThan ?? null,
      }),
  )
    .catch((e: unknown) => {
      throw asInterrupted(e, o.signal);
    })
    .finally(() => cuts.dispose());
}
