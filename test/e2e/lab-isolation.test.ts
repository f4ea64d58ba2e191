/**
 * Labs of different servers run side by side in one test run (vitest's workers share one
 * process group). Stopping one must not touch another: Cyrus's master, running as `nobody`,
 * signals its process group when it shuts down, which SIGTERMed every Dovecot lab's imap and
 * pop3 processes (also `nobody`) in the run: "Server shutting down" in unrelated tests, the
 * flake of earlier clean-clone runs. Dovecot logs every such signal with its sender.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCourier } from '../../lab/courier.js';
import { startCyrus } from '../../lab/cyrus.js';
import { startDovecot, type Lab } from '../../lab/dovecot.js';

let lab: Lab;
beforeAll(async () => {
  lab = await startDovecot({});
});
afterAll(async () => {
  await lab.stop();
});

/** A logged-in POP3 session, so Dovecot has a pop3 process running as the mail owner. */
async function openSession(): Promise<net.Socket> {
  const user = lab.newUser('iso');
  await lab.seedPop3(user, [Buffer.from('Subject: x\r\n\r\nbody\r\n')]);
  const sock = net.connect(lab.pop3.port, lab.pop3.host);
  let seen = '';
  sock.setEncoding('latin1').on('data', (d: string) => {
    seen += d;
  });
  const waitFor = async (n: number) => {
    while ((seen.match(/\r\n/g) ?? []).length < n) await new Promise((r) => setTimeout(r, 20));
  };
  await waitFor(1);
  sock.write(`USER ${user}\r\n`);
  await waitFor(2);
  sock.write(`PASS ${lab.password}\r\n`);
  await waitFor(3);
  expect(seen.split('\r\n')[2]).toMatch(/^\+OK/);
  return sock;
}

const kills = () =>
  readFileSync(`${lab.dir}/dovecot.log`, 'utf8')
    .split('\n')
    .filter((l) => /Killed with signal/.test(l));

describe('labs side by side', () => {
  it("stopping a Cyrus lab signals none of a Dovecot lab's processes", async () => {
    const sock = await openSession();
    const cyrus = await startCyrus({});
    await cyrus.stop();
    sock.write('NOOP\r\n');
    await new Promise((r) => setTimeout(r, 300));
    expect(kills()).toEqual([]);
    expect(sock.destroyed).toBe(false);
    sock.destroy();
  });

  it("stopping a Courier lab signals none of a Dovecot lab's processes", async () => {
    const sock = await openSession();
    const courier = await startCourier();
    await courier.stop();
    await new Promise((r) => setTimeout(r, 300));
    expect(kills()).toEqual([]);
    sock.destroy();
  });
});
