/**
 * Batches received ahead of the APPEND window (engine/copier.ts), within the memory bound.
 *
 * The copier keeps DEFAULT_APPEND_WINDOW batches outstanding on the APPEND connection. With one
 * batch received ahead and no more, the pipeline stalled both ways on loopback: while the window
 * was full and the next batch already in, popsync's main thread idled 100-130 ms at a time
 * waiting for a tagged OK (41% of a 3,000-message run), and after the OK it still had to
 * receive the batch after, while the server finished the one it had and then waited too. So
 * receiving goes on while the window is full, as far as the bound allows: a new batch starts
 * while fewer than DEFAULT_APPEND_WINDOW + 1 batches are held (the bound before this module:
 * the window plus the one being received), or while the bytes held leave room for a whole batch
 * within DEFAULT_APPEND_WINDOW + 1 batch caps. Most batches of a typical mix close on their
 * count well below the byte cap, so several are received ahead; batches at the cap hold what
 * three always did. Memory and the spool thus hold at most three batch caps' worth of received
 * bytes, or three batches, as before, plus the message that closed each.
 *
 * Never more than MAX_HELD_BATCHES, however small: receiving further ahead than the APPEND side
 * can use competed for the CPU with the server storing the window. Without the count, a
 * mailbox of small messages fit the byte bound whole (10,000 of 1 KB), and popsync received all
 * of it first: on the 2-core build machine Dovecot's imap process got 3-27 ms of each 50 while
 * popsync read POP3 (perf sched: popsync's main thread 25-39, Dovecot's pop3 up to 23, both
 * cores 13-46 idle), then stored the last 7,000 messages alone for a quarter of a second after
 * the last RETR was read. The copy is as fast as the slower of popsync's main thread and the
 * server's imap process, and only when neither waits for the other.
 *
 * "Held" is from a batch's arrival until the copier releases it (its replies settled and its
 * spool files discarded). Receiving has no side effect on either server: a batch received but
 * never stored (a drop, an interrupt) is simply received again by a later pass.
 */
import { DEFAULT_APPEND_WINDOW } from '../defaults.js';
import type { ReceivedBatch } from './receiver.js';

/** Batches held at once by count, whatever their size; also the byte bound, in batch caps. */
export const HELD_BATCHES = DEFAULT_APPEND_WINDOW + 1;

/**
 * Batches held at most, however small (above): the window's two, the next one prepared, and
 * five received ahead of it. Alternating pairs against main without it (lab on tmpfs, wall
 * time; CPU the same): 10,000 small messages 0.70 against 0.75 s (faster in 6 of 6), the typical
 * mix 1.12 against 1.14 s (4 of 6). Trial builds with the count set at run time, 5 pairs each:
 * at 8, small 0.69 against 0.77 s (5 of 5), typical 1.12 against 1.16 s (5 of 5), TLS both sides
 * 2.00 against 2.04 s (3 of 5), 30 ms round trip 0.72 against 0.71 s (4 of 8: the same). At 4,
 * small mail was faster still (0.65 s) but the typical mix slower (1.20 against 1.12 s, 1 of 5):
 * its batches of larger messages keep popsync busy while the server stores a slow one; at 6,
 * 0.67 s and 1.17 against 1.15 s (1 of 5); at 10, 0.72 against 0.75 s and 1.06 against 1.12 s.
 */
export const MAX_HELD_BATCHES = 4 * DEFAULT_APPEND_WINDOW;

/**
 * What one message held costs at least, whatever its size: beside its bytes it holds objects
 * (its Received and body records, digest strings, Buffer views of its head and chunks), about
 * 850 bytes of heap for a 20-byte message (20,000 BodyCollector results held, in-process).
 * Counted on wire bytes alone, batches of tiny messages fit the byte bound by the thousand: a
 * mailbox of a million 20-byte messages behind a slow APPEND could have been held whole, some
 * 800 MB of objects. At this floor the messages held number at most three caps over it (15,360
 * at 10 MB), and batches of ordinary mail, a few KB a message, are counted as before.
 */
export const HELD_MESSAGE_FLOOR = 2048;

/**
 * What a received batch holds, for the bound: its bytes in memory or in spool files (receiver.ts
 * counts the same), each message at least HELD_MESSAGE_FLOOR.
 */
function batchBytes(got: ReceivedBatch): number {
  let n = 0;
  // Indexed: a for-of is an iterator result per message until this is optimised.
  for (let i = 0; i < got.items.length; i++) n += Math.max(got.items[i]!.body.wireSize, HELD_MESSAGE_FLOOR);
  return n;
}

/**
 * Whether one more batch may be received while `held` batches of `heldBytes` are held: it may
 * fill up to `cap` bytes (plus the message that closes it), which must fit in HELD_BATCHES caps
 * unless fewer than HELD_BATCHES batches are held, and never past MAX_HELD_BATCHES batches.
 */
export function mayReceive(held: number, heldBytes: number, cap: number): boolean {
  return held < HELD_BATCHES || (held < MAX_HELD_BATCHES && heldBytes + cap <= HELD_BATCHES * cap);
}

export class ReceiveAhead {
  private readonly ready: ReceivedBatch[] = [];
  private receiving: Promise<void> | null = null;
  /** The receiver returned its last batch (null, or one with an error). */
  private ended = false;
  private failure: { error: unknown } | null = null;
  private held = 0;
  private heldBytes = 0;
  private readonly sizes = new WeakMap<ReceivedBatch, number>();
  private waiter: (() => void) | null = null;

  constructor(
    private readonly receiver: { batch(): Promise<ReceivedBatch | null> },
    /** The byte cap of one batch (ReceiveLimits.bytes). */
    private readonly cap: number,
  ) {
    this.pump();
  }

  /** A batch received and not yet taken, in order; undefined when none is. Throws what receiving threw. */
  take(): ReceivedBatch | undefined {
    const got = this.ready.shift();
    if (got === undefined && this.failure) throw this.failure.error;
    return got;
  }

  /** Nothing more will arrive: the last batch was received (or receiving failed). */
  get done(): boolean {
    return this.receiving === null && (this.ended || this.failure !== null);
  }

  /** Settles once a batch is ready to take, or nothing more will arrive. */
  arrival(): Promise<void> {
    if (this.ready.length > 0 || this.done) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.waiter;
      this.waiter = () => {
        previous?.();
        resolve();
      };
    });
  }

  /**
   * A taken batch is no longer held (stored and settled, or dropped): room to receive further.
   * `consumed`: every APPEND of it was answered, so the server read all of its bytes that were
   * written and its memory may be reused (slabs.ts); otherwise a write of it might still be
   * queued on a socket, and its memory is left to the garbage collector.
   */
  release(got: ReceivedBatch, consumed: boolean): void {
    const bytes = this.sizes.get(got);
    if (bytes === undefined) return;
    this.sizes.delete(got);
    if (consumed) got.arena.recycle();
    this.held--;
    this.heldBytes -= bytes;
    this.pump();
  }

  /**
   * Stops receiving: waits for the batch being received (the caller has closed the receiver) and
   * returns the batches received but not taken, for their spool files to go.
   */
  async stop(): Promise<ReceivedBatch[]> {
    this.ended = true;
    await this.receiving;
    return this.ready.splice(0);
  }

  private pump(): void {
    if (this.receiving !== null || this.ended || this.failure !== null) return;
    if (!mayReceive(this.held, this.heldBytes, this.cap)) return;
    this.receiving = this.receiver.batch().then(
      (got) => {
        this.receiving = null;
        if (got === null || got.error) this.ended = true;
        if (got !== null) {
          const bytes = batchBytes(got);
          this.sizes.set(got, bytes);
          this.held++;
          this.heldBytes += bytes;
          this.ready.push(got);
        }
        this.wake();
        this.pump();
      },
      (error: unknown) => {
        this.receiving = null;
        this.failure = { error };
        this.wake();
      },
    );
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}
