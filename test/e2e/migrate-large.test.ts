/**
 * The mailbox from issue 2's "done means": a few thousand messages of mixed sizes with every
 * edge case (a 25 MB message, no Message-ID, two different messages sharing a Message-ID,
 * exact duplicates, dot-stuffed lines, 8-bit headers, bare LF line ends, no final newline,
 * very long lines) lands in Dovecot byte for byte; a second run copies nothing.
 */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { edgeCases, realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('large', { pop3Rawlog: false }, (l, d) => {
  lab = l;
  dir = d;
});

it('copies 2,000 mixed messages plus every edge case, 25 MB included, exactly once', async () => {
  const pop = lab.newUser('src');
  const imap = lab.newUser('dst');
  const edge = edgeCases({ huge: true });
  expect(edge.map((e) => e.name)).toContain('huge-25mb');
  const mix = realisticMix(2000, 99);
  // Edge cases spread through the mailbox, not bunched at one end.
  const all = [...mix];
  edge.forEach((e, i) => {
    all.splice(Math.floor(((i + 1) * mix.length) / (edge.length + 1)) + i, 0, e.bytes);
  });
  await lab.seedPop3(pop, all);
  const expected = digests(await sourceMessages(lab, pop));
  expect(expected).toHaveLength(all.length);

  const args = [
    'migrate',
    '--pop',
    `pop3://${pop}@127.0.0.1:${lab.pop3.port}`,
    '--pop-tls',
    'none',
    '--imap',
    `imap://${imap}@127.0.0.1:${lab.imap.port}`,
    '--imap-tls',
    'none',
    '--pop-password-env',
    'PW',
    '--imap-password-env',
    'PW',
    '--journal',
    join(dir, 'large.sqlite'),
    '--json',
  ];
  const first = await runCli(args, { env: { PW: lab.password } });
  expect(first.code, first.stderr).toBe(0);
  const s1 = JSON.parse(first.stdout);
  expect(s1).toMatchObject({ listed: all.length, copied: all.length, failed: [] });
  console.log(
    `large mailbox: ${s1.copied} messages, ${(s1.copiedBytes / 1048576).toFixed(1)} MiB in ` +
      `${(s1.durationMs / 1000).toFixed(1)} s`,
  );

  expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(expected);

  const second = await runCli(args, { env: { PW: lab.password } });
  expect(second.code, second.stderr).toBe(0);
  expect(JSON.parse(second.stdout)).toMatchObject({ copied: 0, alreadyCopied: all.length });
  expect(await destinationMessages(lab, imap)).toHaveLength(all.length);
}, 240_000);
