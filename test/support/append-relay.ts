/**
 * A loopback relay in front of a lab IMAP server that follows popsync's APPEND connection (the
 * one whose commands are tagged P1, P2, ...) command by command, to prove by counting events,
 * never by timing, that a batch's APPEND was written while an earlier one was unanswered.
 *
 * On that connection it holds everything the server sends, from the first APPEND command on,
 * until the client has begun a second APPEND command: a client that waits for a tagged reply
 * before writing its next batch never gets one (until its own timeout ends the pass). Then it
 * either relays what it held and goes on as a plain relay, or, with `cutAfterReplies`, cuts both
 * sockets as soon as it holds that many tagged APPEND replies: batches the server stored whose
 * outcome the client never heard.
 */

import { ImapStreamSplitter } from '../../lab/imap-splitter.js';
import { startRelay } from './relay.js';

export interface AppendRelayOptions {
  /** Cut instead of releasing, once the held server data holds this many tagged APPEND replies. */
  cutAfterReplies?: number;
}

export interface AppendRelay {
  port: number;
  /** APPEND commands the client began while an earlier APPEND's tagged reply had not reached it. */
  writtenWhileUnanswered(): number;
  /** APPEND commands the client began, on every connection. */
  appendCommands(): number;
  /** The most APPEND commands unanswered at once, as the client saw it. */
  peakUnanswered(): number;
  cuts(): number;
  close(): Promise<void>;
}

const APPEND_COMMAND = /^P\d+ APPEND /;
const TAGGED_REPLY = /^(P\d+) (OK|NO|BAD)\b/;

export async function startAppendRelay(targetPort: number, options: AppendRelayOptions = {}): Promise<AppendRelay> {
  let whileUnanswered = 0;
  let appends = 0;
  let peak = 0;
  let cuts = 0;
  /** The hold happens once, on the first connection that carries an APPEND. */
  let holdUsed = false;
  const relay = await startRelay(targetPort, (client, upstream, close) => {
    /** Tags of APPEND commands begun and not yet answered (as relayed to the client). */
    const unanswered = new Set<string>();
    let held: Buffer[] | null = null;
    let heldReplies = 0;
    /** The client began an APPEND after the one the hold started at. */
    let nextBegun = false;
    const cut = (): void => {
      cuts++;
      close();
    };
    // Replies as the client receives them: a tagged reply answers its command.
    const toClient = new ImapStreamSplitter(
      (line) => {
        const m = TAGGED_REPLY.exec(line.toString('latin1'));
        if (m) unanswered.delete(m[1]!);
      },
      () => {},
    );
    const deliver = (chunk: Buffer): void => {
      toClient.push(chunk);
      client.write(chunk);
    };
    const release = (): void => {
      const out = held ?? [];
      held = null;
      for (const c of out) deliver(c);
    };
    // What the server sends while held: only counted, to know when to cut.
    const heldCounter = new ImapStreamSplitter(
      (line) => {
        if (TAGGED_REPLY.test(line.toString('latin1'))) heldReplies++;
      },
      () => {},
    );
    const fromClient = new ImapStreamSplitter(
      (line) => {
        const text = line.toString('latin1');
        if (!APPEND_COMMAND.test(text)) return;
        appends++;
        if (unanswered.size > 0) whileUnanswered++;
        unanswered.add(text.slice(0, text.indexOf(' ')));
        peak = Math.max(peak, unanswered.size);
        if (!holdUsed) {
          holdUsed = true;
          held = [];
        } else if (held !== null) {
          nextBegun = true;
          if (options.cutAfterReplies === undefined) release();
        }
      },
      () => {},
    );
    upstream.on('data', (chunk: Buffer) => {
      if (held === null) return deliver(chunk);
      held.push(chunk);
      heldCounter.push(chunk);
      if (options.cutAfterReplies !== undefined && nextBegun && heldReplies >= options.cutAfterReplies) cut();
    });
    client.on('data', (chunk: Buffer) => {
      fromClient.push(chunk);
      upstream.write(chunk);
    });
  });
  return {
    port: relay.port,
    writtenWhileUnanswered: () => whileUnanswered,
    appendCommands: () => appends,
    peakUnanswered: () => peak,
    cuts: () => cuts,
    close: () => relay.close(),
  };
}
