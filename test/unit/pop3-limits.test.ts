/**
 * The POP3 reply budgets (limits.ts) and the login decisions of sasl.ts / client.ts, as pure
 * functions with hand-made clocks: the protocol tests show them on a socket.
 */

import { describe, expect, it } from 'vitest';
import { loginDelayWait, MAX_LOGIN_DELAY_WAIT_S } from '../../src/pop3/client.js';
import {
  formatBytes,
  listingCeiling,
  MIN_BYTES_PER_SECOND,
  messageCeiling,
  ReplyBudget,
  RETR_SLACK,
  SMALL_REPLY_MAX,
} from '../../src/pop3/limits.js';
import { redact } from '../../src/net/redact.js';
import { secretForms } from '../../src/net/sasl.js';
import { authMethods, fallsBack } from '../../src/pop3/sasl.js';

describe('ceilings', () => {
  it('grow with what a reply can hold: messages listed, LIST size', () => {
    expect(listingCeiling(0)).toBe(SMALL_REPLY_MAX);
    expect(listingCeiling(1000)).toBeGreaterThan(listingCeiling(10));
    // A server counting LF line ends may send twice the LIST size, plus headers it adds.
    expect(messageCeiling(1000)).toBeGreaterThanOrEqual(2000 + RETR_SLACK);
    expect(formatBytes(64 * 1024)).toBe('64 KiB');
    expect(formatBytes(3 * 1024 * 1024 + 1)).toBe('3 MiB');
    expect(formatBytes(12)).toBe('12 bytes');
  });

  it('a budget refuses bytes beyond its ceiling', () => {
    const b = new ReplyBudget(10, 1000, 0);
    expect(b.add(10)).toBe(true);
    expect(b.add(1)).toBe(false);
  });
});

describe('pace', () => {
  it('gives --timeout of grace, then one millisecond per byte at the minimum rate', () => {
    const b = new ReplyBudget(1e9, 5000, 1000);
    expect(b.msLeft(1000)).toBe(5000);
    expect(b.msLeft(6000)).toBe(0);
    b.add(MIN_BYTES_PER_SECOND * 10);
    expect(b.msLeft(6000)).toBe(10_000);
  });

  it('a trickle of one byte every 3 s runs out soon after the grace', () => {
    const b = new ReplyBudget(1e9, 5000, 0);
    let t = 0;
    while (b.msLeft(t) > 0) {
      t += 3000;
      b.add(1);
    }
    expect(t).toBeLessThanOrEqual(6000);
  });

  it('a steady slow link never runs out', () => {
    const b = new ReplyBudget(1e9, 5000, 0);
    for (let t = 0; t <= 3_600_000; t += 1000) {
      expect(b.msLeft(t)).toBeGreaterThan(0);
      b.add(2 * MIN_BYTES_PER_SECOND);
    }
  });

  it('stops the clock while the reader holds the server back', () => {
    const b = new ReplyBudget(1e9, 5000, 0);
    b.pause(1000);
    expect(b.msLeft(60_000)).toBe(Infinity);
    b.resume(60_000);
    expect(b.elapsed(60_000)).toBe(1000);
    expect(b.msLeft(60_000)).toBe(4000);
  });
});

describe('login methods', () => {
  const caps = (...lines: string[]) => new Map(lines.map((l) => [l.split(' ')[0]!, l.split(' ').slice(1)]));
  const apopGreeting = '+OK GNU Mailutils <123.456@host>';

  it('auto lists every offered method, best first; an explicit choice is alone', () => {
    expect(authMethods('auto', caps('USER', 'SASL PLAIN LOGIN'), apopGreeting)).toEqual([
      'plain',
      'login',
      'apop',
      'user',
    ]);
    expect(authMethods('auto', caps('USER'), apopGreeting)).toEqual(['apop', 'user']);
    expect(authMethods('auto', caps('SASL PLAIN'), '+OK hi')).toEqual(['plain']);
    expect(authMethods('auto', new Map(), '+OK hi')).toEqual(['user']);
    expect(authMethods('auto', caps('TOP'), '+OK hi')).toEqual(['user']);
    expect(authMethods('apop', caps('USER', 'SASL PLAIN'), apopGreeting)).toEqual(['apop']);
  });

  it('moves on after an APOP refusal, or one that does not blame the credentials; stops on [AUTH] otherwise', () => {
    expect(fallsBack('apop', 'AUTH')).toBe(true);
    expect(fallsBack('plain', undefined)).toBe(true);
    expect(fallsBack('plain', 'AUTH')).toBe(false);
    expect(fallsBack('login', 'AUTH')).toBe(false);
  });

  it('waits out a short stated LOGIN-DELAY once; gives up on a long, unknown or repeated one', () => {
    expect(loginDelayWait(5, false)).toBe(6000);
    expect(loginDelayWait(MAX_LOGIN_DELAY_WAIT_S, false)).toBe((MAX_LOGIN_DELAY_WAIT_S + 1) * 1000);
    expect(loginDelayWait(MAX_LOGIN_DELAY_WAIT_S + 1, false)).toBeNull();
    expect(loginDelayWait(900, false)).toBeNull();
    expect(loginDelayWait(undefined, false)).toBeNull();
    expect(loginDelayWait(5, true)).toBeNull();
  });
});

describe('redaction', () => {
  it('blanks the password and the encodings popsync sends it in', () => {
    const forms = secretForms({ authcid: 'alice', secret: 'pw-123', host: 'h', port: 110 }, ['PLAIN']);
    const b64 = Buffer.from('pw-123').toString('base64');
    const plain = Buffer.from('\0alice\0pw-123').toString('base64');
    expect(redact(`-ERR pw-123 / ${b64} / ${plain}`, forms)).toBe('-ERR **** / **** / ****');
    expect(secretForms({ authcid: 'alice', secret: '', host: 'h', port: 110 }, ['PLAIN'])).toEqual([]);
  });
});
