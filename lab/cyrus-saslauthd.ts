/**
 * The password check of a Cyrus lab (lab/cyrus.ts, `checkPasswords`): a stand-in for Cyrus
 * SASL's saslauthd on a unix socket, speaking its protocol (cyrus-sasl lib/checkpw.c,
 * saslauthd_verify_password): the request is four fields, each a 16-bit big-endian length and
 * its bytes (user, password, service, realm); the answer one such field starting "OK" or "NO".
 *
 * Why a stand-in: Cyrus's own checks need either saslauthd and saslpasswd2 (Debian's sasl2-bin,
 * which this machine lacks) or a sasldb file (Berkeley DB, which nothing here writes); its
 * `alwaystrue` takes any password. Cyrus asks this socket as it asks saslauthd
 * (`sasl_pwcheck_method: saslauthd`), so a wrong password meets Cyrus's own refusal in POP3 and
 * IMAP alike. It runs in the test's process: a test must not block its event loop (spawnSync)
 * while Cyrus checks a login.
 */
import { chmod } from 'node:fs/promises';
import net from 'node:net';

export interface PasswordCheck {
  /** The users whose password was checked so far, right or wrong, in order. */
  readonly checked: readonly string[];
  /** Logins refused so far (a wrong password). */
  readonly refused: number;
  close(): Promise<void>;
}

/** Listens on `socketPath`; any user whose password is `password` logs in. */
export async function startPasswordCheck(socketPath: string, password: string): Promise<PasswordCheck> {
  const checked: string[] = [];
  let refused = 0;
  const server = net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const fields = countedFields(buf, 4);
      if (fields === null) return;
      checked.push(fields[0]!);
      const ok = fields[1] === password;
      if (!ok) refused++;
      const answer = Buffer.from(ok ? 'OK' : 'NO authentication failed');
      const head = Buffer.alloc(2);
      head.writeUInt16BE(answer.length);
      socket.end(Buffer.concat([head, answer]));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  // Cyrus's processes run as another user (nobody, when the lab runs as root).
  await chmod(socketPath, 0o666);
  return {
    get checked() {
      return checked;
    },
    get refused() {
      return refused;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** `n` length-prefixed fields from the start of `buf`, or null while some have not arrived. */
function countedFields(buf: Buffer, n: number): string[] | null {
  const out: string[] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    if (buf.length < at + 2) return null;
    const len = buf.readUInt16BE(at);
    if (buf.length < at + 2 + len) return null;
    out.push(buf.toString('utf8', at + 2, at + 2 + len));
    at += 2 + len;
  }
  return out;
}
