/**
 * Several APPEND connections of our own (pipeline.ts), one folder per connection at a time
 * (`--append-connections`, `append_connections:` under `destination:`).
 *
 * Why per folder: one connection's APPENDs wait on the server's transaction per command (and on
 * a round trip per literal where the server offers no LITERAL+), so folders written side by side
 * on separate connections overlap that wait. One folder is never split: its copies must land in
 * the order their intents were journaled, because a copy stored without a UID (no UIDPLUS) is
 * found by content from its folder's floor on, which a later batch's copies must not have passed.
 * One connection per folder keeps that order for free, since a connection answers in order.
 * Tried: with a folder's batches alternating between two connections, Dovecot gave a later
 * batch lower UIDs than an earlier one, and the writer's check that new UIDs ascend stopped
 * the run (exit 4). Split over four connections, one Dovecot folder also took fewer messages a
 * second than over one (the raw sink bench: the server serialises a folder's appends on its lock).
 *
 * A folder sticks to the connection it was first given for the whole session. A further
 * connection is opened only when a further folder comes and the cap allows it; past the cap a
 * new folder joins the connection that has carried the fewest bytes. A further connection the
 * server turns away (pipeline.ts TurnedAway: a per-user connection limit, a login refused now;
 * a close before its greeting only when the one try more after a pause closes too) lowers the
 * cap to what is open: the copy goes on over fewer connections rather than stopping
 * the run, since no retry lifts such a limit. Any other failure to open it (TLS, a timeout, a
 * reset) is thrown as a failure of the first connection is: the pass ends and the run
 * reconnects (or stops, for TLS), rather than running for hours on fewer connections than asked
 * for over a network hiccup that a reconnect would have cured.
 */
import { PopsyncError } from '../errors.js';
import type { Logger } from '../log.js';
import { openAgainIfUnheard, type PipelinedAppender, PipelineUnsupported, TurnedAway } from './pipeline.js';

/** What placement knows of one open connection. */
export interface ConnectionLoad {
  /** Folders placed on it so far. */
  folders: number;
  /** Bytes handed to it so far. */
  bytes: number;
}

/**
 * Where a folder not seen before goes: an open connection that carries no folder yet (the first
 * one, opened with the sink), else `open.length` (a new connection) while fewer than `cap` are
 * open, else the connection with the fewest bytes handed to it.
 */
export function placeFolder(open: readonly ConnectionLoad[], cap: number): number {
  const idle = open.findIndex((c) => c.folders === 0);
  if (idle >= 0) return idle;
  if (open.length < Math.max(1, cap)) return open.length;
  let best = 0;
  for (let i = 1; i < open.length; i++) if (open[i]!.bytes < open[best]!.bytes) best = i;
  return best;
}

export class AppendPool {
  private readonly conns: Array<ConnectionLoad & { appender: PipelinedAppender }>;
  private readonly folderOf = new Map<string, number>();
  private destroyed = false;

  constructor(
    first: PipelinedAppender,
    private cap: number,
    /** A further connection like the first (same options, secrets collected by the writer). */
    private readonly open: () => Promise<PipelinedAppender>,
    private readonly log: Logger,
  ) {
    this.conns = [{ appender: first, folders: 0, bytes: 0 }];
  }

  /** The first connection's: every connection logs in to the same server as the same user. */
  get capabilities(): ReadonlySet<string> {
    return this.conns[0]!.appender.capabilities;
  }

  /** Whether `a` is one of this pool's connections (the writer counts their messages as pipelined). */
  has(a: PipelinedAppender): boolean {
    return this.conns.some((c) => c.appender === a);
  }

  /**
   * The connection `folder`'s next batch of `bytes` goes down. The writer calls this inside its
   * serial slot, one hand-over at a time, and queues the batch before the next call: so the
   * batches of one folder are written in the order they were handed over. A connection that
   * closed while idle (the server's autologout) or was spent by a refusal of its whole session
   * is replaced first: every batch outstanding on it was rejected then.
   */
  async forFolder(folder: string, bytes: number): Promise<PipelinedAppender> {
    let i = this.folderOf.get(folder);
    if (i === undefined) {
      i = placeFolder(this.conns, this.cap);
      if (i === this.conns.length) i = await this.grow();
      this.folderOf.set(folder, i);
      this.conns[i]!.folders++;
    }
    const c = this.conns[i]!;
    if (!c.appender.usable) {
      const broken = c.appender.protocolFailure;
      if (broken !== null) throw broken;
      c.appender.destroy();
      c.appender = this.adopt(await this.open());
    }
    c.bytes += bytes;
    return c.appender;
  }

  /**
   * One more connection, or, when the server turns it away (or lacks on it what the first one
   * had), the best of those open. Anything else is thrown (see the top of this file).
   */
  private async grow(): Promise<number> {
    try {
      // A close before the greeting lowers the cap only when it happens again (openAgainIfUnheard).
      const appender = await this.open().catch((err: unknown) => openAgainIfUnheard(err, this.open, this.log));
      this.conns.push({ appender: this.adopt(appender), folders: 0, bytes: 0 });
      this.log.debug({ connections: this.conns.length }, 'opened a further IMAP APPEND connection');
      return this.conns.length - 1;
    } catch (err) {
      // Destroyed: imapflow's session closed meanwhile (writer.ts destroys the pool on its 'close',
      // emitted as imapflow marks it unusable). A server going down or restarting refuses and
      // resets connections as a limit does, and closes the session too: a lost connection, then,
      // never a cap for the rest of the run (as writer.ts decides of the first APPEND connection).
      if (this.destroyed || !(err instanceof TurnedAway || err instanceof PipelineUnsupported)) throw err;
      this.cap = this.conns.length;
      this.log.warn(
        { connections: this.cap },
        `the IMAP server refused a further APPEND connection (${err.message}); ` +
          `going on with ${this.cap} APPEND connection${this.cap === 1 ? '' : 's'}`,
      );
      return placeFolder(this.conns, this.cap);
    }
  }

  /** A connection that opened after the sink died is closed at once, never used. */
  private adopt(a: PipelinedAppender): PipelinedAppender {
    if (this.destroyed) {
      a.destroy();
      throw new PopsyncError('connection', 'IMAP session ended while a further APPEND connection opened');
    }
    return a;
  }

  async close(): Promise<void> {
    await Promise.all(this.conns.map((c) => c.appender.close()));
  }

  destroy(): void {
    this.destroyed = true;
    for (const c of this.conns) c.appender.destroy();
  }
}
