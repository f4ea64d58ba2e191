/**
 * A loopback relay in front of the lab Dovecot's plaintext IMAP listener that answers some
 * APPENDs the way Microsoft 365 does when a mailbox is busy, `<tag> NO Request is throttled.
 * Suggested Backoff Time: N milliseconds`, without passing them on: a throttled message is
 * not stored, exactly as on the real service. Every other byte passes unchanged.
 *
 * The client's stream is parsed as IMAP (lines and `{n}`, `{n+}`, `~{n+}` literals by byte
 * count), so a message body is never taken for a command. A throttled APPEND goes to Dovecot
 * as a NOOP under the same tag, and Dovecot's tagged answer to it is rewritten into the
 * refusal: the refusal so comes in the place a real server would put it, after the replies to
 * the commands before it and before those after it (pipelining clients depend on that). With a
 * synchronising literal the client then never sends the body; a non-synchronising literal is
 * swallowed up to the end of the command. Plaintext only: after STARTTLS it just copies bytes.
 */
import { ImapStreamSplitter, LITERAL_AT_END } from '../../lab/imap-splitter.js';
import { startRelay } from './relay.js';

export interface ThrottleProxy {
  port: number;
  /** APPEND commands seen, and how many of them were answered with the throttling refusal. */
  stats(): { appends: number; throttled: number };
  close(): Promise<void>;
}

/** For the Nth APPEND seen (from 1, across all connections): the pause to ask for, or null to pass it on. */
export type ThrottlePlan = (appendNumber: number) => number | null;

const CRLF = Buffer.from('\r\n');
const withCrlf = (line: Buffer): Buffer => Buffer.concat([line, CRLF]);

export async function startThrottleProxy(targetPort: number, plan: ThrottlePlan): Promise<ThrottleProxy> {
  const stats = { appends: 0, throttled: 0 };
  const relay = await startRelay(targetPort, (client, upstream) => {
    /** Tags whose NOOP answer becomes a throttling refusal, with the pause it asks for. */
    const refusing = new Map<string, number>();

    /** A throttled APPEND whose non-synchronising literal(s) are being swallowed. */
    let swallowing = false;
    let literalIsSwallowed = false;
    const fromClient = new ImapStreamSplitter(
      (bytes) => {
        const line = bytes.toString('latin1');
        const lit = LITERAL_AT_END.exec(line);
        if (swallowing) {
          // The rest of a swallowed command: more literals, or its end.
          literalIsSwallowed = lit !== null;
          swallowing = lit !== null;
          return;
        }
        const append = /^(\S+) (?:UID )?APPEND /i.exec(line);
        if (append) {
          stats.appends++;
          const ms = plan(stats.appends);
          if (ms !== null) {
            stats.throttled++;
            refusing.set(append[1]!, ms);
            upstream.write(`${append[1]!} NOOP\r\n`);
            if (lit?.[2] === '+') {
              swallowing = true;
              literalIsSwallowed = true;
            } else {
              // Refused instead of '+': the client never sends the body (RFC 3501 7.5).
              literalIsSwallowed = false;
              fromClient.cancelLiteral();
            }
            return;
          }
        }
        literalIsSwallowed = false;
        if (/^\S+ STARTTLS$/i.test(line)) {
          fromClient.passThrough();
          fromServer.passThrough();
        }
        upstream.write(withCrlf(bytes));
      },
      (bytes) => {
        if (!literalIsSwallowed) upstream.write(bytes);
      },
    );
    const fromServer = new ImapStreamSplitter(
      (line) => {
        const tag = /^(\S+) OK\b/.exec(line.toString('latin1'))?.[1];
        const ms = tag === undefined ? undefined : refusing.get(tag);
        if (ms === undefined) return void client.write(withCrlf(line));
        refusing.delete(tag!);
        client.write(`${tag} NO Request is throttled. Suggested Backoff Time: ${ms} milliseconds\r\n`);
      },
      (bytes) => client.write(bytes),
    );
    upstream.on('data', (d: Buffer) => fromServer.push(d));
    client.on('data', (d: Buffer) => fromClient.push(d));
  });
  return {
    port: relay.port,
    stats: () => ({ ...stats }),
    close: () => relay.close(),
  };
}
