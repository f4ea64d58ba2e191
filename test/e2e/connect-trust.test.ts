/**
 * One trust rule for every socket (src/net/trust.ts, README "Private CAs"): a --*-ca-file CA is
 * trusted on top of the roots and NODE_EXTRA_CA_CERTS, on the POP3 side and on both IMAP
 * connections alike. Before net/ the IMAP side built roots + CA file and dropped
 * NODE_EXTRA_CA_CERTS, so a server trusted through it failed there and worked on POP3.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { connectImap } from '../../src/imap/index.js';
import { connectPop3 } from '../../src/pop3/index.js';
import { startDovecot, type Lab } from '../../lab/dovecot.js';
import { generateTestCertificate } from '../support/fake-pop3.js';

let lab: Lab;
let unrelatedCa: string;
const saved = process.env.NODE_EXTRA_CA_CERTS;

beforeAll(async () => {
  lab = await startDovecot();
  unrelatedCa = generateTestCertificate().cert;
});
afterAll(async () => {
  await lab?.stop();
});
afterEach(() => {
  if (saved === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
  else process.env.NODE_EXTRA_CA_CERTS = saved;
});

async function tryImap(appendPath: 'pipelined' | 'imapflow'): Promise<PopsyncError | null> {
  try {
    const sink = await connectImap({
      host: lab.imaps.host,
      port: lab.imaps.port,
      tls: 'implicit',
      user: lab.newUser('trust'),
      password: lab.password,
      ca: [unrelatedCa],
      timeoutMs: 10_000,
      appendPath,
    });
    expect(sink.appendCounts).toBeDefined();
    await sink.close();
    return null;
  } catch (e) {
    return e as PopsyncError;
  }
}

async function tryPop3(): Promise<PopsyncError | null> {
  try {
    const s = await connectPop3({
      host: lab.pop3s.host,
      port: lab.pop3s.port,
      tls: 'implicit',
      user: lab.newUser('trust'),
      password: lab.password,
      ca: [unrelatedCa],
      timeoutMs: 10_000,
    });
    await s.quit();
    return null;
  } catch (e) {
    return e as PopsyncError;
  }
}

describe('a CA file adds to NODE_EXTRA_CA_CERTS on every connection', () => {
  it('a server trusted via NODE_EXTRA_CA_CERTS is reached by POP3, the APPEND connection and imapflow', async () => {
    process.env.NODE_EXTRA_CA_CERTS = lab.caFile;
    expect(await tryPop3()).toBeNull();
    expect(await tryImap('pipelined')).toBeNull();
    expect(await tryImap('imapflow')).toBeNull();
  });

  it('without it, the same CA file alone is refused as tls on all three', async () => {
    delete process.env.NODE_EXTRA_CA_CERTS;
    for (const err of [await tryPop3(), await tryImap('pipelined'), await tryImap('imapflow')]) {
      expect(err).toBeInstanceOf(PopsyncError);
      expect(err?.kind).toBe('tls');
    }
  });
});
