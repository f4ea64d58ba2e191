/**
 * One command per item, at most `limit` of them awaiting replies at once: the next is sent as
 * each reply comes, so a pipelined connection never waits for a round trip between groups (as
 * chunks of `limit` did), and what is queued for a mailbox of any size stays `limit` commands.
 * Every item's command queued at once (Promise.all over the listing) held a pending command, its
 * promise and its closures for every message: bounded by nothing but the mailbox.
 */

/**
 * Sends `send(item)` for each of `items` in order, at most `limit` unsettled, and resolves with
 * their results in order. `afterLast` runs right after the last command was sent, in the same
 * tick, so what goes behind it (QUIT behind the DELEs) leaves in the same write; it does not run
 * when sending stopped early. The first failure rejects at once and no further item is sent; the
 * commands already sent settle on their own (their failures are not reported twice).
 */
export function inFlight<T, R>(
  items: readonly T[],
  limit: number,
  send: (item: T) => Promise<R>,
  afterLast?: () => void,
): Promise<R[]> {
  return new Promise<R[]>((resolve, reject) => {
    const out = new Array<R>(items.length);
    let next = 0;
    let settled = 0;
    let failed = false;
    const fail = (e: unknown): void => {
      if (failed) return;
      failed = true;
      reject(e);
    };
    const start = (): void => {
      const i = next++;
      let reply: Promise<R>;
      try {
        reply = send(items[i]!);
      } catch (e) {
        fail(e);
        return;
      }
      if (next === items.length) afterLast?.();
      reply.then((v) => {
        out[i] = v;
        settled++;
        if (failed) return;
        if (settled === items.length) resolve(out);
        else if (next < items.length) start();
      }, fail);
    };
    if (items.length === 0) {
      afterLast?.();
      resolve(out);
      return;
    }
    while (next < items.length && next < Math.max(1, limit) && !failed) start();
  });
}
