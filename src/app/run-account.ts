/**
 * The run use case: one account copied under its lock, by the engine, with the account's
 * routing. `plan-account.ts` is the same account with the side effects switched off.
 *
 * An interrupt (SIGINT/SIGTERM through `signal`) ends a wait for a server at once instead of
 * at --timeout (interrupt.ts), and whatever error the cut caused is reported as an interruption.
 */
import { withLockedJournal } from '../engine/lock.js';
import { runEngine, type EngineOptions } from '../engine/run.js';
import { guardingFolders } from '../engine/folder-guard.js';
import type { UploadLimits } from '../engine/options.js';
import { refusalText, type TransferLimits } from '../config/providers.js';
import type { ImapSink } from '../imap/types.js';
import { isPopsyncError } from '../errors.js';
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
  | 'limits'
> & {
  /** --wait: seconds to wait for another run's lock. */
  waitSeconds?: number;
};

const MIN_PACED_BATCH = 1024 * 1024;

/**
 * The sink opener under the provider's rules: a refused login names how that service takes
 * logins (Gmail: an app password or OAuth2; Microsoft: OAuth2 only), and the folders it forbids
 * (Gmail's All Mail) are guarded.
 */
function guarded(openSink: () => Promise<ImapSink>, limits: TransferLimits | undefined): () => Promise<ImapSink> {
  const p = limits?.provider;
  if (!p) return openSink;
  const open = () =>
    openSink().catch((e: unknown) => {
      throw isPopsyncError(e) && e.kind === 'auth' ? e.with({ hint: `${p.label} takes ${p.login}` }) : e;
    });
  if (p.refusedFolders.length === 0 && p.refusedRoles.length === 0) return open;
  return guardingFolders({ names: p.refusedFolders, roles: p.refusedRoles, refusal: (f) => refusalText(p, f) }, open);
}

function uploadLimits(t: TransferLimits): UploadLimits {
  return {
    maxRate: t.maxRate,
    dailyBudget: t.dailyBudget,
    appendLimit: t.appendLimit,
    provider: t.provider?.label ?? null,
  };
}

export async function runAccount(
  account: AccountEndpoints,
  settings: AccountSettings,
  o: RunOptions,
): Promise<RunResult> {
  const { waitSeconds, ...engine } = o;
  const { openSink, route, onlyFolder } = accountRouting(settings.routing, guarded(account.openSink, settings.limits));
  const cuts = interruptible({ openSource: account.openSource, openSink }, o.signal);
  // The servers are reached while the journal opens and the IMAP code loads (a sync that may not
  // need the destination reaches only the source); the lock still comes before any login.
  const cool = account.warmUp?.({ destination: !o.lazyDestination }) ?? (() => undefined);
  // Node leaves a socket's connect for the next tick, and the journal opens synchronously (~10-20
  // ms): one tick first, so the connects leave now and the servers' greetings are on their way
  // while it opens, instead of after.
  await new Promise<void>((resolve) => process.nextTick(resolve));
  o.logger.debug({ journal: account.journalPath }, 'journal');
  // The account lock: two overlapping runs on one account must never both copy.
  return withLockedJournal(
    account.journalPath,
    account.sourceKey,
    {
      command: o.command,
      name: account.pop.display,
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
        onlyFolder,
        batchMessages: settings.batchMessages,
        // Under --max-rate a batch is about a second of it (at least 1 MiB), so what goes up at
        // once stays near the rate instead of a whole --batch-mb burst after a long wait.
        batchBytes: settings.limits?.maxRate
          ? Math.min(settings.batchBytes, Math.max(MIN_PACED_BATCH, Math.round(settings.limits.maxRate)))
          : settings.batchBytes,
        retry: { maxAttempts: settings.reconnectAttempts },
        skipLargerThan: settings.routing.skipLargerThan ?? null,
        ...(settings.limits ? { limits: uploadLimits(settings.limits) } : {}),
      }),
  )
    .catch((e: unknown) => {
      // The engine names the account by its journal key; the user, like the run's summary and a
      // connection's errors, by the source as given (the key says `localhost` for 127.0.0.1).
      const named = isPopsyncError(e) && e.context.account === account.sourceKey;
      throw asInterrupted(named ? e.with({ account: account.pop.display }) : e, o.signal);
    })
    .finally(() => {
      cool();
      cuts.dispose();
    });
}
