/**
 * `--max-connections-per-host N`: a counting semaphore per host, so a batch of hundreds of
 * accounts on one POP3 server and one IMAP server never has more than N of them talking to
 * either at once (providers block an address that opens too many sessions; an old POP3 box
 * falls over).
 *
 * An account takes a slot on its source host and one on its destination host for the whole
 * of its run, both at once or neither: holding one while waiting for the other would block
 * accounts that need only the first. Waiters are looked at in arrival order whenever a slot
 * comes free, and every one that now fits goes, so an account for an idle host is never stuck
 * behind one for a busy host. Pure: no sockets, no timers.
 *
 * A key may have a limit of its own (`limitOf`): a provider that caps the connections of one
 * mailbox (Gmail: 15) gets a key per destination mailbox whose limit is what fits under it.
 */

export interface HostSlots {
  /** Resolves with a release function once a slot is held on every host of `hosts`. */
  acquire(hosts: readonly string[]): Promise<() => void>;
  /** Slots in use on `host` now (tests, and proofs of the cap). */
  inUse(host: string): number;
}

export function createHostSlots(
  limit: number,
  limitOf: (key: string) => number | undefined = () => undefined,
): HostSlots {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError('the per-host limit must be a whole number above 0');
  const used = new Map<string, number>();
  const waiting: Array<{ hosts: string[]; grant: () => void }> = [];
  // At least 1: a key whose own limit rounds to 0 would otherwise never let its account run.
  const cap = (h: string) => Math.max(1, limitOf(h) ?? limit);

  const fits = (hosts: readonly string[]) => hosts.every((h) => (used.get(h) ?? 0) < cap(h));
  const take = (hosts: readonly string[]) => {
    for (const h of hosts) used.set(h, (used.get(h) ?? 0) + 1);
  };
  const give = (hosts: readonly string[]) => {
    for (const h of hosts) {
      const n = (used.get(h) ?? 1) - 1;
      if (n === 0) used.delete(h);
      else used.set(h, n);
    }
    for (let i = 0; i < waiting.length; ) {
      const w = waiting[i]!;
      if (fits(w.hosts)) {
        waiting.splice(i, 1);
        take(w.hosts);
        w.grant();
      } else i++;
    }
  };

  return {
    acquire(list) {
      // Callers key hosts by role ("pop3 mail.example.net", "imap mail.example.net"): one
      // machine serving both sides has a cap for each. A key named twice takes one slot.
      const hosts = [...new Set(list)];
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        give(hosts);
      };
      if (fits(hosts)) {
        take(hosts);
        return Promise.resolve(release);
      }
      return new Promise((resolve) => waiting.push({ hosts, grant: () => resolve(release) }));
    },
    inUse: (host) => used.get(host) ?? 0,
  };
}
