/**
 * A destination whose NAMESPACE announces a personal prefix holding a line break (a hostile or
 * broken server): the names of folders under it cannot be carried by any IMAP command. The
 * writer, on imapflow's connection and on our APPEND connection, fails that folder with a typed
 * error naming it, sends nothing for it, and the connection goes on for INBOX, which has no prefix.
 */
import { describe, expect, it } from 'vitest';
import type { ImapSink } from '../../src/imap/index.js';
import type { FakeImap } from '../support/fake-imap.js';
import { fakeImapSinks } from '../support/fake-imap-sink.js';

const connect = fakeImapSinks();

/** The fake server's NAMESPACE sends this prefix as a literal, line break and all. */
const PREFIX = 'Mail\r\n.';

function setup(capabilities: string[]): Promise<{ fake: FakeImap; sink: ImapSink }> {
  return connect({ capabilities, namespacePrefix: PREFIX, delimiter: '.' });
}

const msg = (n: number) => Buffer.from(`Message-ID: <m${n}@test>\r\nSubject: test ${n}\r\n\r\nbody ${n}\r\n`);

const unsendable = {
  kind: 'server',
  context: expect.objectContaining({ folder: 'Archive' }),
  message: expect.stringContaining('IMAP folder "Archive" cannot be named in any IMAP command'),
};

describe('a NAMESPACE prefix with a line break', () => {
  for (const [how, capabilities] of [
    ['our APPEND connection (LITERAL+, MULTIAPPEND)', ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'MULTIAPPEND', 'NAMESPACE']],
    ["imapflow's connection (synchronising literals only)", ['IMAP4rev1', 'UIDPLUS', 'NAMESPACE']],
  ] as const) {
    it(`${how}: each message to a folder under it fails, typed; nothing is sent; INBOX still works`, async () => {
      const { fake, sink } = await setup([...capabilities]);
      const seen: number[] = [];
      const outcomes = await sink.appendBatch(
        'Archive',
        [1, 2, 3].map((n) => ({ body: msg(n), flags: [] })),
        (i) => seen.push(i),
      );
      expect(seen).toEqual([0, 1, 2]);
      for (const o of outcomes) expect(o).toMatchObject({ ok: false, error: unsendable });
      expect(fake.appends).toHaveLength(0);
      const inbox = await sink.appendBatch('INBOX', [{ body: msg(4), flags: [] }]);
      expect(inbox).toEqual([{ ok: true, uid: 1, uidValidity: expect.any(BigInt) }]);
      expect(fake.mailboxes.get('INBOX')!.messages).toHaveLength(1);
    });
  }

  it('opening a folder under it is refused, typed and naming it, not a lost connection', async () => {
    const { sink } = await setup(['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'NAMESPACE']);
    await expect(sink.ensureFolder('Archive')).rejects.toMatchObject(unsendable);
    await expect(sink.ensureFolder('INBOX')).resolves.toMatchObject({ path: 'INBOX' });
  });
});
