/**
 * A loopback relay in front of the lab Dovecot's plaintext IMAP listener that makes it behave
 * like a server without UIDPLUS, and watches what the client sends.
 *
 * Dovecot's `imap_capability` only changes what is *advertised*: measured on 2.3.19, a
 * Dovecot that does not list UIDPLUS still answers every APPEND with `OK [APPENDUID v u]`, and
 * imapflow takes that UID whatever the capability list says. A client tested against it would
 * never meet the case the test is about (a copy whose UID is unknown). So this relay removes
 * the UIDPLUS response codes (APPENDUID, COPYUID) from what the server sends. Dovecot also
 * still accepts `{n+}` literals when LITERAL+ is not listed, so the relay counts them: a test
 * can then show that the client never used one.
 *
 * Both directions are parsed as IMAP: lines, and literals (`{n}`, `{n+}`, `~{n}`) passed
 * through untouched by byte count, so a message body that happens to contain "APPENDUID" is
 * never rewritten. After the client says STARTTLS the bytes are TLS and the relay only copies
 * them: nothing is hidden over TLS, which is why the no-UIDPLUS lab is used over plaintext.
 */
import net from 'node:net';
import { ImapStreamSplitter, LITERAL_AT_END } from './imap-splitter.js';

export interface FrontStats {
  /** APPEND commands the client sent. */
  appends: number;
  /** Literals the client sent in the non-synchronizing form ({n+}), which needs LITERAL+. */
  nonSyncLiterals: number;
  /** APPENDUID / COPYUID response codes removed from server answers. */
  hiddenUidCodes: number;
  /** Of the non-synchronizing literals, those over LITERAL-'s 4,096 octets. */
  oversizeNonSyncLiterals: number;
  /** APPEND commands that carried more than one message (MULTIAPPEND). */
  multiAppends: number;
}

export interface ImapFront {
  port: number;
  stats(): FrontStats;
  close(): Promise<void>;
}

export interface FrontOptions {
  /** Remove APPENDUID and COPYUID response codes (a server without UIDPLUS). */
  hideUidplus: boolean;
  /**
   * Act as a LITERAL- server (RFC 7888): a non-synchronizing literal over 4,096 octets ends
   * the session with `* BYE [TOOBIG]`, before any of it reaches Dovecot.
   */
  literalMinus?: boolean;
}

const LITERAL_MINUS_MAX = 4096;

const UID_CODE = /^((?:\S+|\*) OK )\[(?:APPENDUID|COPYUID) [^\]]*\] ?/i;

/** One direction's splitter whose lines may be replaced; push() returns what to forward. */
function rewriter(edit: (line: Buffer) => Buffer): { splitter: ImapStreamSplitter; push: (d: Buffer) => Buffer } {
  let out: Buffer[] = [];
  const splitter = new ImapStreamSplitter(
    (line) => out.push(edit(line), CRLF),
    (bytes) => out.push(bytes),
  );
  return {
    splitter,
    push(d) {
      splitter.push(d);
      const joined = Buffer.concat(out);
      out = [];
      return joined;
    },
  };
}

const CRLF = Buffer.from('\r\n');

export async function startImapFront(targetPort: number, opts: FrontOptions): Promise<ImapFront> {
  const stats: FrontStats = {
    appends: 0,
    nonSyncLiterals: 0,
    hiddenUidCodes: 0,
    oversizeNonSyncLiterals: 0,
    multiAppends: 0,
  };
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    open.add(client);
    open.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const fromServer = rewriter((line) => {
      if (!opts.hideUidplus) return line;
      const text = line.toString('latin1');
      if (!UID_CODE.test(text)) return line;
      stats.hiddenUidCodes++;
      return Buffer.from(text.replace(UID_CODE, '$1'), 'latin1');
    });
    // The line after a literal continues its command: a further message of a MULTIAPPEND when
    // it announces another literal.
    let afterLiteral = false;
    let inAppend = false;
    let countedMulti = false;
    let tooBig = false;
    const fromClient = rewriter((line) => {
      const text = line.toString('latin1');
      const nonSync = /\{(\d+)\+\}$/.exec(text);
      if (nonSync) {
        stats.nonSyncLiterals++;
        if (Number(nonSync[1]) > LITERAL_MINUS_MAX) {
          stats.oversizeNonSyncLiterals++;
          if (opts.literalMinus) tooBig = true;
        }
      }
      if (!afterLiteral) {
        inAppend = /^\S+ (UID )?APPEND /i.test(text);
        countedMulti = false;
        if (inAppend) stats.appends++;
      } else if (inAppend && !countedMulti && LITERAL_AT_END.test(text)) {
        stats.multiAppends++;
        countedMulti = true;
      }
      afterLiteral = LITERAL_AT_END.test(text);
      if (/^\S+ STARTTLS$/i.test(text)) {
        fromClient.splitter.passThrough();
        fromServer.splitter.passThrough();
      }
      return line;
    });
    upstream.on('data', (d: Buffer) => {
      const out = fromServer.push(d);
      if (out.length) client.write(out);
    });
    client.on('data', (d: Buffer) => {
      const out = fromClient.push(d);
      if (tooBig) {
        // Nothing of this chunk reaches Dovecot: the literal was refused as it was announced.
        client.end('* BYE [TOOBIG] Non-synchronizing literal over 4096 octets (LITERAL-)\r\n');
        upstream.destroy();
        return;
      }
      if (out.length) upstream.write(out);
    });
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on('close', close);
      s.on('error', close);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    stats: () => ({ ...stats }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
