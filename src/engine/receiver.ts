/**
 * Receiving the copy list from POP3, message by message, into batches bounded by what arrived.
 *
 * LIST sizes are the server's claim, and a server that understated them once made one 16 MB
 * batch take 2.2 GB. So LIST sizes decide nothing here: RETRs are written ahead (pipelined, a
 * batch's worth of commands), but every body is read as a stream, and reading stops - which
 * stops the socket, and TCP stops the server - while a full batch waits for the destination.
 * A batch closes when the bytes it received reach the byte cap (each message counted at least
 * receive-ahead.ts's HELD_MESSAGE_FLOOR, what its records cost) or it has its count of messages;
 * a message past its spill point (Receiver.spillAt: the room its batch has left, at least
 * `limits.spillAt`) goes to a spool file instead of memory (received.ts). So memory and the
 * spool hold what engine/receive-ahead.ts allows (three batches, or more while they fit in three
 * byte caps: the two of engine/copier.ts's window and those received ahead), plus the message
 * that closed each (in memory up to `limits.spillAt`; a 200 MB message travels in a batch of its own),
 * whatever the server claims or sends.
 *
 * Progress is per message: a batch cut by a dropped connection still delivers every message
 * that arrived whole before the drop, so a link that stalls every 12 MB moves 12 MB per pass
 * instead of nothing. The message that was arriving when the connection dropped is charged one
 * failed attempt; after `setAsideAfter` of them in one run it is set aside (reported as failed
 * with the reason, left on the server, tried again by the next run) so one message whose RETR
 * always kills the connection cannot block the rest of the mailbox. A reply larger than the
 * message can be (retrCeiling) has it set aside at once. Counting per run is enough because
 * the run reconnects by itself; a message is never journaled before it arrived whole.
 */
import { isPopsyncError, PopsyncError } from '../errors.js';
import { isOverCeiling, messageCeiling, type RetrBody } from '../pop3/index.js';
import type { Pop3Session } from '../pop3/types.js';
import type { RunContext } from './context.js';
import type { ListedMessage } from './plan.js';
import { BodyCollector, type ReceivedBody } from './received.js';
import { HELD_BATCHES, HELD_MESSAGE_FLOOR } from './receive-ahead.js';
import { RetrAhead } from './retr-ahead.js';
import { Arena, SLAB_BYTES, SlabPool } from './slabs.js';
import type { Spool } from './spool.js';

export interface Received {
  m: ListedMessage;
  body: ReceivedBody;
}

export interface ReceivedBatch {
  items: Received[];
  /** Set when the connection failed after `items` arrived: store them, then end the pass with it. */
  error: PopsyncError | null;
  /** Where the bodies held in memory are (slabs.ts); recycled once their bytes were consumed. */
  arena: Arena;
}

export interface ReceiveLimits {
  /** Messages per batch. */
  messages: number;
  /** Bytes received per batch, held in memory or spooled (so they bound the temp files too). */
  bytes: number;
  /**
   * A message larger than this and than the room left in its batch (Receiver.spillAt) is
   * spooled to disk as it arrives.
   */
  spillAt: number;
  /** Failed attempts to receive one message, in one run, before it is set aside. */
  setAsideAfter: number;
}

/**
 * The most a RETR may carry for a message LIST called `listSize` bytes: the POP3 client's own
 * reply ceiling (pop3/limits.ts: twice the claim plus 128 KiB). Past it the server is lying or
 * broken: the message is set aside at once, as the rest of the reply would only fill the disk.
 */
function retrCeiling(listSize: number): number {
  return messageCeiling(listSize);
}

/**
 * The most messages a batch can hold: its count, or what its byte cap holds at HELD_MESSAGE_FLOOR
 * a message (batch()), whichever is fewer. A batch's worth of RETRs goes ahead (retr-ahead.ts),
 * a stream and a command each: --batch-messages 100000 of tiny messages wrote all 100,000 at once.
 */
export function batchCount(limits: Pick<ReceiveLimits, 'messages' | 'bytes'>): number {
  return Math.min(limits.messages, Math.ceil(limits.bytes / HELD_MESSAGE_FLOOR));
}

export class Receiver {
  private readonly ahead: Array<{ m: ListedMessage; stream: RetrBody }> = [];
  private next = 0;
  private failed: PopsyncError | null = null;
  /** close() was called: the session is being dropped by the caller. */
  private closing = false;
  /** The error of a reply past retrCeiling that this receiver cut off itself. */
  private overCeiling: PopsyncError | null = null;
  /**
   * Memory for the bodies of the batches received (slabs.ts). It keeps no more free slabs than
   * receive-ahead.ts lets be held at once: its batch caps plus the message closing each.
   */
  private readonly slabs: SlabPool;
  private readonly retrsAhead: RetrAhead;

  constructor(
    private readonly ctx: RunContext,
    private readonly source: Pop3Session,
    private readonly todo: readonly ListedMessage[],
    private readonly spool: Spool,
    private readonly limits: ReceiveLimits,
  ) {
    this.retrsAhead = new RetrAhead(todo, batchCount(limits), source.roundTripMs ?? Number.POSITIVE_INFINITY);
    this.slabs = new SlabPool(Math.ceil((HELD_BATCHES * (limits.bytes + limits.spillAt)) / SLAB_BYTES));
  }

  /** The next batch of whole messages; null when the copy list is done or the connection failed. */
  async batch(): Promise<ReceivedBatch | null> {
    if (this.failed) return null;
    const items: Received[] = [];
    const arena = new Arena(this.slabs);
    let bytes = 0;
    // What the batch holds as receive-ahead.ts counts it (each message at least its floor, so never
    // less than `bytes`): the cap closes a batch of tiny messages too. On their bytes alone,
    // --batch-messages 100000 put that many 50-byte messages in one batch (some 85 MB of objects),
    // and three batches are always held.
    let held = 0;
    while (items.length < this.limits.messages && held < this.limits.bytes) {
      this.issue();
      const x = this.ahead[0];
      if (!x) break;
      // Never with nothing received: an empty batch() means the copy list is done.
      if (items.length > 0 && this.waitsForNextBatch(x.m, bytes)) break;
      this.ahead.shift();
      let body: ReceivedBody | null;
      try {
        const got = this.receive(x.m, x.stream, arena, this.spillAt(bytes));
        body = got instanceof Promise ? await got : got;
      } catch (e) {
        this.failed = this.charge(x.m, e);
        this.abandonAhead();
        return { items, error: this.failed, arena };
      }
      if (!body) continue;
      items.push({ m: x.m, body });
      bytes += body.wireSize;
      held += Math.max(body.wireSize, HELD_MESSAGE_FLOOR);
    }
    if (items.length > 0) return { items, error: null, arena };
    arena.recycle();
    return null;
  }

  /**
   * Where the next message of a batch that received `bytes` so far goes to a spool file: past
   * the room left under the batch's byte cap, or past `limits.spillAt` if that is more. Held in
   * memory, a message within the room keeps its batch within the cap, and one past it costs no
   * more than `limits.spillAt`: the bound is the one a fixed `spillAt` gave (a cap plus the
   * message that closes it, per batch). Spilled at a fixed 4 MB, 21 of the typical mix's 3,000
   * messages (120 of its 260 MB) were written to a file and read back, ~6% of the run's CPU in
   * the kernel alone; against the room, 8 (47 MB).
   */
  private spillAt(bytes: number): number {
    return Math.max(this.limits.spillAt, this.limits.bytes - bytes);
  }

  /**
   * Whether the batch, `bytes` in, closes before `m` because LIST says `m` would spill in the room
   * left but fits an empty batch's: the next batch holds it in memory. LIST only picks where a
   * batch ends here, never what is held: a claim too small spills at the room as before, one too
   * large costs a batch of one (its journal step and APPEND command). On the typical mix the 8
   * messages that still spilled (47 MB) stay in memory, for one batch more (36 against 35).
   */
  private waitsForNextBatch(m: ListedMessage, bytes: number): boolean {
    return m.size > this.spillAt(bytes) && m.size <= this.spillAt(0);
  }

  /**
   * Ends reading: RETRs written ahead are left to the connection, which the caller drops. The
   * message arriving then fails by our doing, not its own: it is not charged an attempt.
   */
  close(): void {
    this.closing = true;
    this.abandonAhead();
  }

  /**
   * Keeps RETRs written ahead (retr-ahead.ts: a batch's worth, more of small mail): they cost
   * nothing until read (backpressure).
   * Topped up once a quarter of them were read rather than one per message read, so they leave
   * in a few writes instead of one each (pop3/connection.ts sends what one tick queued together),
   * while three quarters stay in flight for a link with a long round trip.
   */
  private issue(): void {
    const target = this.retrsAhead.target(this.next - this.ahead.length);
    if (this.ahead.length > (target * 3) / 4) return;
    while (this.ahead.length < target && this.next < this.todo.length) {
      const m = this.todo[this.next++]!;
      this.ahead.push({ m, stream: this.source.retrStream(m.n) });
    }
  }

  private abandonAhead(): void {
    for (const x of this.ahead.splice(0)) x.stream.destroy();
  }

  /**
   * One whole message, or null when the server refused to send it (-ERR: that message only).
   * The body itself, not a promise, when all of it had arrived and it stayed in memory: most
   * small mail, as the RETRs written ahead arrive many to a socket read. An async receive was a
   * promise and its turns of the event loop per message, and each batch() awaited it. Whatever
   * has to wait (a chunk not yet arrived, a spool write) or fails goes on in receiveRest(), which
   * is this same loop awaited.
   */
  private receive(
    m: ListedMessage,
    stream: RetrBody,
    arena: Arena,
    spillAt: number,
  ): ReceivedBody | null | Promise<ReceivedBody | null> {
    const body = new BodyCollector(this.spool, spillAt, arena, m.size > spillAt);
    const ceiling = retrCeiling(m.size);
    try {
      for (let chunk = stream.read(); ; chunk = stream.read()) {
        if (chunk instanceof Promise) return this.receiveRest(m, stream, body, ceiling, chunk, null);
        if (chunk === null) break;
        const writing = body.add(chunk);
        if (writing !== null) return this.receiveRest(m, stream, body, ceiling, null, writing);
        this.checkCeiling(m, stream, body, ceiling);
      }
      return body.spilled ? this.receiveRest(m, stream, body, ceiling, null, null) : body.finishHeld();
    } catch (e) {
      return this.notReceived(m, stream, body, e);
    }
  }

  /**
   * receive() from where it had to wait: `chunk` is the read it was waiting for, `writing` the
   * spool write of the chunk it took last (its ceiling not checked yet).
   */
  private async receiveRest(
    m: ListedMessage,
    stream: RetrBody,
    body: BodyCollector,
    ceiling: number,
    chunk: Promise<Buffer | null> | null,
    writing: Promise<void> | null,
  ): Promise<ReceivedBody | null> {
    try {
      if (writing !== null) {
        await writing;
        this.checkCeiling(m, stream, body, ceiling);
      }
      // A promise only when no chunk has arrived yet: most mail is in before it is read.
      for (let next = chunk ?? stream.read(); ; next = stream.read()) {
        const got = next instanceof Promise ? await next : next;
        if (got === null) break;
        const w = body.add(got);
        if (w !== null) await w;
        this.checkCeiling(m, stream, body, ceiling);
      }
      return await body.finish();
    } catch (e) {
      return this.notReceived(m, stream, body, e);
    }
  }

  /** Ends the session when the reply outgrew what LIST said the message is (retrCeiling). */
  private checkCeiling(m: ListedMessage, stream: RetrBody, body: BodyCollector, ceiling: number): void {
    if (body.received <= ceiling) return;
    stream.destroy();
    // The rest of the reply is unread, so the session is out of step: it ends here.
    this.source.destroy();
    this.overCeiling = new PopsyncError(
      'protocol',
      `the POP3 server sent more than ${ceiling} bytes for message ${m.n}, which LIST said was ${m.size} bytes`,
      {
        uidl: m.uidl,
        messageNumber: m.n,
      },
    );
    throw this.overCeiling;
  }

  /** A message that failed to arrive: null when the server refused it, else the failure, thrown. */
  private async notReceived(m: ListedMessage, stream: RetrBody, body: BodyCollector, e: unknown): Promise<null> {
    // A reply left unread must not keep the connection paused.
    stream.destroy();
    await body.abandon();
    if (isPopsyncError(e) && e.kind === 'server') {
      this.ctx.rec.fail(m, null, `the POP3 server refused to send it: ${e.message}`, e.context.serverResponse ?? null);
      return null;
    }
    throw e;
  }

  /**
   * A failure while `m` was arriving. A reply past its ceiling is the server lying about this
   * message: it is set aside at once. A drop, a timeout or a trickle may be the link's fault:
   * one more failed attempt, set aside at the limit. Either way the supervisor goes on with a
   * new connection; anything else (a full temp dir, an interrupt) is returned as it is.
   */
  private charge(m: ListedMessage, e: unknown): PopsyncError {
    const err = isPopsyncError(e)
      ? e
      : new PopsyncError('internal', `receiving message ${m.n}: ${String(e)}`, {}, { cause: e });
    if (err.kind !== 'connection' && err.kind !== 'protocol') return err;
    // An interrupt, or the pass ending on the other side, drops the POP3 session on purpose:
    // not the message's fault.
    if (this.ctx.o.signal?.aborted || this.closing) return err;
    // A reply past its ceiling is the server's fault, whichever side cut it (the connection usually
    // trips first: its count includes the status line).
    const overCeiling = err === this.overCeiling || isOverCeiling(err);
    const attempts = (this.ctx.receiveFailures.get(m.uidl) ?? 0) + 1;
    this.ctx.receiveFailures.set(m.uidl, attempts);
    if (overCeiling || attempts >= this.limits.setAsideAfter) {
      const why = overCeiling
        ? err.message
        : `receiving it from the POP3 server failed ${attempts === 1 ? 'once' : `${attempts} times`} (last: ` +
          `${err.message})`;
      this.ctx.rec.fail(
        m,
        null,
        `set aside: ${why}; it stays on the server and the next run tries it again`,
        err.context.serverResponse ?? null,
      );
      this.ctx.o.logger.warn(
        { account: this.ctx.o.account, uidl: m.uidl, attempts },
        'message set aside: the POP3 server failed while sending it',
      );
      // Settling it counts as progress, so the reconnect budget does not run out on its account.
      this.ctx.settledThisPass++;
    }
    if (err.kind === 'connection') return err;
    return new PopsyncError(
      'connection',
      err.message,
      { ...err.context, uidl: m.uidl, messageNumber: m.n },
      { cause: err },
    );
  }
}
