/**
 * The lab's seeded maildir names (lab/maildir-name.ts): the sizes a delivery writes, and names
 * that spread over Dovecot's uidlist hash table whatever the seeding process's pid.
 */
import { describe, expect, it } from 'vitest';
import { toCrlf } from '../../lab/corpus.js';
import { deliveredName, virtualSize } from '../../lab/maildir-name.js';

/** Dovecot 2.3's maildir_filename_base_hash (maildir-filename.c): the name up to ':'. */
function dovecotBaseHash(name: string): number {
  let h = 0;
  for (let i = 0; i < name.length && name[i] !== ':'; i++) {
    h = ((h << 4) + name.charCodeAt(i)) >>> 0;
    const g = (h & 0xf0000000) >>> 0;
    if (g !== 0) h = (h ^ (g >>> 24) ^ g) >>> 0;
  }
  return h;
}

const START = 1_000_000_000 * 1_000_000;

describe('deliveredName', () => {
  it('carries S= and W= as a delivery does, and the empty flags', () => {
    const msg = Buffer.from('Subject: x\nA: b\r\n\r\nbody\n');
    expect(deliveredName(START + 7, 4242, msg)).toBe(
      `1000000000.M7P4242.popsync-lab,S=${msg.length},W=${msg.length + 2}:2,`,
    );
  });

  // 20,000 consecutive stamps, as the bench's cron section seeds; every pid length Linux gives
  // (pid_max up to 4194304). Before, a name with the message's index beside its stamp fell
  // into half as many values as names, ~2,000 deep, for 5- and 6-digit pids.
  it.each([7, 1234, 23456, 43210, 123456, 4194303])('names hash apart in Dovecot for pid %i', (pid) => {
    const depth = new Map<number, number>();
    for (let i = 1; i <= 20_000; i++) {
      const h = dovecotBaseHash(deliveredName(START + i, pid, Buffer.from(`Subject: ${i}\r\n\r\n${i}\r\n`)));
      depth.set(h, (depth.get(h) ?? 0) + 1);
    }
    expect(Math.max(...depth.values())).toBeLessThanOrEqual(2);
  });
});

describe('virtualSize', () => {
  it.each([
    ['CRLF only', 'a\r\nb\r\n'],
    ['bare LF', 'a\nb\n\n'],
    ['LF first', '\nx'],
    ['lone CR', 'a\rb\r'],
    ['CR CR LF', 'a\r\r\n'],
    ['no line end', 'abc'],
    ['empty', ''],
  ])('is the CRLF form length: %s', (_, text) => {
    const b = Buffer.from(text, 'latin1');
    expect(virtualSize(b)).toBe(toCrlf(b).length);
  });
});
