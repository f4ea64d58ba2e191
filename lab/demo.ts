/**
 * `npm run demo`: a real migration with nothing to set up. Starts a private Dovecot on
 * loopback, seeds a POP3 mailbox with a realistic mix, runs the real `popsync migrate` binary
 * into an IMAP account of the same Dovecot (TLS verified against the lab's own CA), runs it a
 * second time to show that a rerun copies nothing, checks the destination, and cleans up.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { ImapFlow } from 'imapflow';
import { realisticMix } from './corpus.js';
import { startDovecot } from './dovecot.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function run(args: string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'popsync.js'), ...args], {
      stdio: 'inherit',
      env: { ...process.env, ...env },
    });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
}

async function main(): Promise<void> {
  const count = Number(process.env.DEMO_MESSAGES ?? 300);
  process.stdout.write('Starting a private Dovecot (POP3 + IMAP) on 127.0.0.1 ...\n');
  const lab = await startDovecot({ pop3Rawlog: false });
  let exit = 0;
  try {
    const popUser = 'alice-pop';
    const imapUser = 'alice-imap';
    const messages = realisticMix(count, 2026);
    await lab.seedPop3(popUser, messages);
    const mb = messages.reduce((a, m) => a + m.length, 0) / 1024 / 1024;
    process.stdout.write(
      `Seeded ${messages.length} messages (${mb.toFixed(1)} MB) into POP3 mailbox ` +
        `${popUser}@127.0.0.1:${lab.pop3.port}\n\n`,
    );

    const args = [
      'migrate',
      '--pop',
      `pop3://${popUser}@127.0.0.1:${lab.pop3.port}`,
      '--pop-ca-file',
      lab.caFile,
      '--pop-password-env',
      'DEMO_PASSWORD',
      '--imap',
      `imap://${imapUser}@127.0.0.1:${lab.imap.port}`,
      '--imap-ca-file',
      lab.caFile,
      '--imap-password-env',
      'DEMO_PASSWORD',
      '--journal',
      join(lab.dir, 'alice.journal.sqlite'),
      '--folder',
      'Migrated/Old POP3',
    ];
    const env = { DEMO_PASSWORD: lab.password };
    process.stdout.write(`$ popsync ${args.map((a) => (/[\s]/.test(a) ? JSON.stringify(a) : a)).join(' ')}\n`);
    exit = await run(args, env);
    process.stdout.write('\nThe same command again: the journal knows every message, so nothing is copied.\n');
    const second = await run(args, env);
    if (exit === 0) exit = second;

    const client = new ImapFlow({
      host: lab.imap.host,
      port: lab.imap.port,
      secure: false,
      doSTARTTLS: true,
      tls: { ca: [readFileSync(lab.caFile)] },
      auth: { user: imapUser, pass: lab.password },
      logger: false,
    });
    await client.connect();
    // The server's delimiter need not be '/': find the folder by its levels.
    const box = (await client.list()).find((b) => b.path.split(b.delimiter).join('/') === 'Migrated/Old POP3');
    const status = box ? await client.status(box.path, { messages: true }) : false;
    await client.logout();
    const held = status === false ? 0 : (status.messages ?? 0);
    process.stdout.write(
      `\nIMAP folder "Migrated/Old POP3" of ${imapUser} now holds ${held} messages (source: ${messages.length}).\n`,
    );
    if (held !== messages.length) exit = exit || 1;
  } finally {
    await lab.stop();
  }
  process.exitCode = exit;
}

main().catch((e: unknown) => {
  process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
