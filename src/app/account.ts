/**
 * What a use case (run-account.ts, plan-account.ts) is handed for one account. The CLI
 * resolves it (flags, config file, account list, secrets) and the use case connects through
 * it; nothing here parses input. The run and its dry run build their router here, from one
 * place, so the two cannot route differently.
 */
import type { ImapSink } from '../imap/types.js';
import type { Pop3Session } from '../pop3/types.js';
import { resolvingRoles } from '../engine/roles.js';
import { compileRouting, engineRouter, type RoutingSpec } from '../mapping/rules.js';
import type { Router } from '../mapping/types.js';
import type { TransferLimits } from '../config/providers.js';

export interface AccountEndpoints {
  /** The source mailbox's journal key, "user@host". */
  sourceKey: string;
  journalPath: string;
  pop: { display: string };
  imap: { display: string };
  openSource(): Promise<Pop3Session>;
  openSink(): Promise<ImapSink>;
  /**
   * Opens the sockets the first openSource (and, with `destination`, openSink) take, so their
   * connects run while the journal opens and the code loads; returns what closes those not taken.
   */
  warmUp?(o: { destination: boolean }): () => void;
}

/** How one account is copied: its routing and batch limits (from the config or the flags). */
export interface AccountSettings {
  routing: RoutingSpec;
  batchMessages: number;
  batchBytes: number;
  reconnectAttempts: number;
  /** Rate, daily budget and the provider's rules (config/providers.ts); absent: none. */
  limits?: TransferLimits;
}

/**
 * The account's router, and the sink opener that resolves the SPECIAL-USE roles it reads on
 * the first connection (a role the destination lacks stops the account before any copy).
 */
export function accountRouting(
  spec: RoutingSpec,
  openSink: () => Promise<ImapSink>,
  now?: () => Date,
): { openSink: () => Promise<ImapSink>; route: Router; onlyFolder: () => string | null } {
  const routing = compileRouting(spec);
  const sink = resolvingRoles(routing.roles, openSink);
  return {
    openSink: sink.openSink,
    route: engineRouter(routing, { roles: sink.roles, ...(now ? { now } : {}) }),
    onlyFolder: () => routing.onlyFolder(sink.roles()),
  };
}
