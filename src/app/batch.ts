/**
 * The `batch` use case: many accounts, up to `parallel` at once, each also waiting for a slot
 * on its source and destination hosts (host-slots.ts). One failing account never stops the
 * others: `run` reports its own errors and returns the account's exit code; the batch returns
 * the worst. An interruption stops starting accounts; those running finish their batch of
 * messages and stop as they do alone (the signal reaches them through `run`).
 *
 * Accounts start in list order. A huge mailbox holds one of the `parallel` places for as long
 * as it takes and the others keep flowing past it; no account waits behind another one
 * except for a place or a host slot. Same shape as app/daemon.ts (`sync --every`): the loop
 * knows nothing of POP3, IMAP or printing, it is handed a function per account.
 */
import { ExitCode } from '../errors.js';
import type { HostSlots } from './host-slots.js';

export interface BatchOptions<A> {
  accounts: readonly A[];
  parallel: number;
  /** One account's run; resolves with its exit code (the caller has reported any error). */
  run(account: A): Promise<number>;
  /** The host keys an account holds slots on while it runs (see host-slots.ts). */
  hostsOf?(account: A): readonly string[];
  slots?: HostSlots;
  signal?: AbortSignal;
}

export async function runBatch<A>(o: BatchOptions<A>): Promise<number> {
  if (!Number.isInteger(o.parallel) || o.parallel < 1) throw new RangeError('parallel must be a whole number above 0');
  let next = 0;
  let worst: number = ExitCode.ok;
  // `run` throws only for what ends the whole batch (an interrupt): no new account starts,
  // the running ones finish, then it is rethrown.
  let stop: { error: unknown } | null = null;
  const stopped = () => o.signal?.aborted === true || stop !== null;
  const worker = async (): Promise<void> => {
    while (next < o.accounts.length && !stopped()) {
      const account = o.accounts[next++]!;
      const release = o.slots && o.hostsOf ? await o.slots.acquire(o.hostsOf(account)) : () => undefined;
      try {
        // A slot may have come free only because an interrupt ended the others.
        if (stopped()) break;
        // Awaited first: `Math.max(worst, await ...)` would read `worst` before the wait and
        // lose what accounts running beside this one recorded meanwhile.
        const code = await o.run(account);
        worst = Math.max(worst, code);
      } catch (error) {
        stop ??= { error };
      } finally {
        release();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.parallel, o.accounts.length) }, worker));
  if (stop !== null) throw (stop as { error: unknown }).error;
  return worst;
}
