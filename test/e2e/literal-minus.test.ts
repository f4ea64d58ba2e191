/**
 * LITERAL- (RFC 7888), the literal form Gmail offers: non-synchronising literals only up to
 * 4,096 octets. Dovecot made to look like such a server (lab `imapLiteralMinus`: LITERAL-
 * advertised instead of LITERAL+, and a relay that ends the session on any larger `{n+}`).
 * popsync pipelines on its own connection, small messages without waiting and larger ones
 * each after the server's '+', instead of one message per round trip through imapflow.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
// Without MULTIAPPEND, as Gmail: one APPEND per message.
useLab('literal-minus', { imapLiteralMinus: true, imapWithout: ['MULTIAPPEND'] }, (l, d) => {
  lab = l;
  dir = d;
});

/** Small messages (under 4 KiB) and larger ones, interleaved. */
function corpus(): Buffer[] {
  return realisticMix(30, 17).map((m, i) =>
    i % 3 === 0 ? m : Buffer.from(`Subject: small ${i}\r\nMessage-ID: <small-${i}@test>\r\n\r\nhello ${i}\r\n`),
  );
}

describe('a LITERAL- server (4,096-octet non-synchronising literals)', () => {
  it('refuses a larger {n+} literal, as the real thing may (the limit is enforced)', async () => {
    const user = lab.newUser('raw');
    const sock = net.connect(lab.imap.port, '127.0.0.1');
    let heard = '';
    sock.on('data', (d: Buffer) => {
      heard += d.toString('latin1');
    });
    const until = async (re: RegExp) => {
      for (let i = 0; i < 200 && !re.test(heard); i++) await new Promise((r) => setTimeout(r, 25));
      expect(heard).toMatch(re);
    };
    await until(/LITERAL-/);
    expect(heard).not.toMatch(/LITERAL\+/);
    sock.write(`a LOGIN ${user} ${lab.password}\r\n`);
    await until(/^a OK/m);
    const body = `Subject: big\r\n\r\n${'x'.repeat(5000)}\r\n`;
    sock.write(`b APPEND INBOX {${body.length}+}\r\n${body}\r\n`);
    await until(/BYE \[TOOBIG\]/);
    sock.destroy();
    expect(lab.imapWire()!.oversizeNonSyncLiterals).toBeGreaterThanOrEqual(1);
  });

  it('pipelines small messages with {n+} and sends larger ones after the server says +', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const messages = corpus();
    await lab.seedPop3(pop, messages);
    const expected = digests(await sourceMessages(lab, pop));
    const before = lab.imapWire()!;
    const logFile = join(dir, `${pop}.log`);
    const r = await runCli(
      labArgs('migrate', lab, pop, imap, join(dir, `${pop}.sqlite`), [
        '--no-progress',
        '--json',
        '--log-file',
        logFile,
      ]),
      { env: { PW: lab.password } },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: messages.length, reconnects: 0 });
    expect(readFileSync(logFile, 'utf8')).toMatch(/IMAP APPEND connection ready \(pipelined LITERAL-\)/);
    const after = lab.imapWire()!;
    expect(after.appends - before.appends).toBe(messages.length);
    expect(after.oversizeNonSyncLiterals - before.oversizeNonSyncLiterals).toBe(0);
    const small = messages.filter((m) => m.length <= 4096).length;
    expect(small).toBeGreaterThan(0);
    expect(small).toBeLessThan(messages.length);
    expect(after.nonSyncLiterals - before.nonSyncLiterals).toBe(small);
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(expected);
  });
});
