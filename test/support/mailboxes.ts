/**
 * Reads both sides of a migration for assertions: the source as POP3 RETR returns it (through
 * our own client, whose framing is proven byte-exact by the unit tests), the destination as
 * IMAP FETCH BODY[] returns it (through imapflow, independent of our writer's code paths).
 */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { ImapFlow } from 'imapflow';
import type { CyrusLab } from '../../lab/cyrus.js';
import type { Lab } from '../../lab/dovecot.js';
import { connectPop3 } from '../../src/pop3/index.js';

export const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export async function sourceMessages(lab: Lab, user: string): Promise<Buffer[]> {
  const s = await connectPop3({ host: lab.pop3.host, port: lab.pop3.port, tls: 'none', user, password: lab.password });
  try {
    const list = await s.list();
    return await Promise.all(list.map((m) => s.retr(m.n)));
  } finally {
    await s.quit();
  }
}

export interface StoredMessage {
  uid: number;
  body: Buffer;
  flags: string[];
  internalDate: Date;
}

export async function destinationMessages(
  lab: Lab,
  user: string,
  folder: string | string[] = 'INBOX',
): Promise<StoredMessage[]> {
  const client = new ImapFlow({
    host: lab.imap.host,
    port: lab.imap.port,
    secure: false,
    doSTARTTLS: true,
    tls: { ca: [readFileSync(lab.caFile)] },
    auth: { user, pass: lab.password },
    logger: false,
  });
  await client.connect();
  try {
    const lock = await client.getMailboxLock(folder, { readOnly: true });
    try {
      const out: StoredMessage[] = [];
      const exists = typeof client.mailbox === 'object' && client.mailbox ? client.mailbox.exists : 0;
      if (exists === 0) return out;
      for await (const m of client.fetch('1:*', { uid: true, source: true, flags: true, internalDate: true })) {
        out.push({
          uid: m.uid,
          body: m.source as Buffer,
          flags: [...(m.flags ?? [])].filter((f) => f !== '\\Recent').sort(),
          internalDate: new Date(m.internalDate as Date),
        });
      }
      return out;
    } finally {
      lock.release();
    }
  } finally {
    await client.logout();
  }
}

/** Sorted digests: equal lists mean the same messages, each the same number of times. */
export function digests(bodies: Buffer[]): string[] {
  return bodies.map(sha).sort();
}

/** A user's INBOX on the lab's Cyrus, as IMAP FETCH BODY[] returns it (oldest first). */
export function cyrusMessages(cyrus: CyrusLab, user: string): Promise<Buffer[]> {
  return inboxBodies(cyrus.client(user));
}

/** The INBOX of a client not yet connected, as IMAP FETCH BODY[] returns it (oldest first); logs out. */
export async function inboxBodies(c: ImapFlow): Promise<Buffer[]> {
  await c.connect();
  try {
    const lock = await c.getMailboxLock('INBOX', { readOnly: true });
    try {
      const out: Buffer[] = [];
      if (typeof c.mailbox === 'object' && c.mailbox.exists === 0) return out;
      for await (const m of c.fetch('1:*', { uid: true, source: true })) out.push(m.source as Buffer);
      return out;
    } finally {
      lock.release();
    }
  } finally {
    await c.logout();
  }
}

/**
 * `count` short notes numbered from 1, for tests that need many small messages: note i has the
 * Message-ID `<${id}${i}@example.net>` and `lines + (i % spread)` lines.
 */
export function shortNotes(count: number, id: string, lines: number, spread: number): Buffer[] {
  return Array.from({ length: count }, (_, k) => {
    const i = k + 1;
    return Buffer.from(
      `From: a@example.net\r\nTo: b@example.net\r\nSubject: note ${i}\r\nMessage-ID: <${id}${i}@example.net>\r\n` +
        `\r\n${`Line ${i} of a short note.\r\n`.repeat(lines + (i % spread))}`,
    );
  });
}
