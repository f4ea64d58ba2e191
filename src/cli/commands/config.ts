/**
 * `popsync config check FILE`: validate a config and show what it resolves to, without
 * connecting anywhere and without reading any secret. Password sources are described, never
 * used: an environment variable is reported as set or not, a file as readable or not, a
 * command by its text (it is not run).
 */
import { accessSync, constants } from 'node:fs';
import type { Command } from 'commander';
import { formatDelay } from '../../app/daemon.js';
import {
  appendConnectionsProblem,
  providerProfile,
  refusedFolderProblem,
  transferLimits,
} from '../../config/providers.js';
import { configuredAccounts, type ConfiguredAccount } from '../../config/resolve.js';
import { exactSize, roughSize } from '../../engine/plan.js';
import { compileRouting, type PatternSpec, type RuleSpec } from '../../mapping/rules.js';
import { stepName } from '../../mapping/seen.js';
import type { SideFlags } from '../../config/side-flags.js';
import { checkConfigUrls, resolveImapEndpoint, resolvePop3Endpoint } from '../endpoints.js';
import { configJournal, refuseDirectory } from '../journal-identity.js';
import { PopsyncError, isPopsyncError } from '../../errors.js';

function describePassword(f: SideFlags, env: NodeJS.ProcessEnv = process.env): string {
  if (f.passwordEnv !== undefined) return `password_env: ${f.passwordEnv} (${env[f.passwordEnv] ? 'set' : 'NOT SET'})`;
  if (f.passwordFile !== undefined) {
    let readable = true;
    try {
      accessSync(f.passwordFile, constants.R_OK);
    } catch {
      readable = false;
    }
    return `password_file: ${f.passwordFile} (${readable ? 'readable' : 'NOT READABLE'})`;
  }
  if (f.passwordCommand !== undefined) return `password_command: ${f.passwordCommand} (not run by check)`;
  return 'password: none given (popsync asks on a terminal)';
}

function pattern(p: PatternSpec): string {
  return `${p.kind === 'regex' ? `/${p.source}/` : p.source}${p.caseSensitive ? ' (case-sensitive)' : ''}`;
}

function describeRule(r: RuleSpec): string {
  const m = r.match;
  const conds = [
    ...m.headers.map((h) => `${h.header} ~ ${h.patterns.map(pattern).join(' | ')}`),
    ...(m.largerThan !== undefined ? [`size > ${m.largerThan} B`] : []),
    ...(m.smallerThan !== undefined ? [`size < ${m.smallerThan} B`] : []),
    ...(m.before ? [`arrived before ${m.before.toISOString()}`] : []),
    ...(m.after ? [`arrived at/after ${m.after.toISOString()}`] : []),
    ...(m.olderThanMs !== undefined ? [`older than ${m.olderThanMs / 86_400_000} d`] : []),
    ...(m.newerThanMs !== undefined ? [`newer than ${m.newerThanMs / 86_400_000} d`] : []),
  ];
  return (
    `${r.name}: ${conds.length ? conds.join(' and ') : 'every message'} -> ` +
    `${r.folder}${r.flags.length ? ` +${r.flags.join(' +')}` : ''}`
  );
}

function endpoint(side: 'pop3' | 'imap', f: SideFlags): string {
  try {
    const e = side === 'pop3' ? resolvePop3Endpoint(f) : resolveImapEndpoint(f);
    return `${e.display} (tls ${e.tls}${e.rejectUnauthorized === false ? ', certificate NOT verified' : ''})`;
  } catch (err) {
    // Same rules as a real run, reported here instead of at connect time.
    throw isPopsyncError(err) ? new PopsyncError('config', err.message, err.context) : err;
  }
}

/** APPEND connections a run of `a` may open: its own setting, else its provider's, else 1. */
function appendConnectionsOf(a: ConfiguredAccount): number {
  const profile = a.imap.provider === undefined ? null : providerProfile(a.imap.provider);
  return a.imap.appendConnections ?? profile?.appendConnections ?? 1;
}

/** The provider profile and the upload limits an account runs under, when it has any. */
function providerLines(a: ConfiguredAccount): string[] {
  const profile = a.imap.provider === undefined ? null : providerProfile(a.imap.provider);
  const limits = transferLimits(profile, a);
  const lines: string[] = [];
  if (profile !== null) {
    for (const folder of [a.routing.defaultFolder, ...a.routing.rules.map((x) => x.folder)]) {
      const bad = refusedFolderProblem(profile, folder);
      if (bad !== null) throw new PopsyncError('config', bad, { folder });
    }
    const tooMany = appendConnectionsProblem(profile, appendConnectionsOf(a));
    if (tooMany !== null) throw new PopsyncError('config', `append_connections: ${tooMany}`);
    const facts = [
      ...(profile.appendLimit !== null ? [`messages up to ${exactSize(profile.appendLimit)}`] : []),
      ...(profile.maxConnectionsPerMailbox !== null
        ? [`${profile.maxConnectionsPerMailbox} connections per mailbox`]
        : []),
      ...profile.refusedFolders.slice(0, 1).map((f) => `never into ${f}`),
    ];
    lines.push(`  provider:     ${profile.label}${facts.length ? ` (${facts.join(', ')})` : ''}`);
  }
  if (limits.dailyBudget !== null)
    lines.push(`  daily budget: ${roughSize(limits.dailyBudget.bytes)} in any 24 hours (${limits.dailyBudget.basis})`);
  if (limits.maxRate !== null) lines.push(`  max rate:     ${roughSize(limits.maxRate)}/s (max_rate)`);
  return lines;
}

function describeAccount(a: ConfiguredAccount, env: NodeJS.ProcessEnv = process.env): string {
  compileRouting(a.routing);
  const r = a.routing;
  const lines = [
    `account ${a.name ?? `#${a.index + 1}`}`,
    `  source:       ${endpoint('pop3', a.pop)}`,
    `                ${describePassword(a.pop, env)}${a.pop.caFile ? `; ca_file ${a.pop.caFile}` : ''}`,
    `  destination:  ${endpoint('imap', a.imap)}`,
    `                ${describePassword(a.imap, env)}${a.imap.caFile ? `; ca_file ${a.imap.caFile}` : ''}`,
    `  journal:      ${a.journal ?? '(default: ~/.local/state/popsync/<user@host>.sqlite)'}`,
    `  transfer:     batch ${a.batchMessages} messages / ${a.batchMb} MB, timeout ${a.timeoutSeconds} s, ` +
      `${a.reconnectAttempts} reconnect attempts, ${appendConnectionsOf(a)} APPEND connection` +
      `${appendConnectionsOf(a) === 1 ? '' : 's'} at most`,
    `  arrival date: ${r.arrivalDate ? 'Received:, else Date:, else copy time' : 'copy time (arrival_date: false)'}`,
    `  seen policy:  ${r.seen.length ? r.seen.map(stepName).join(' -> ') : '(none: copies arrive unread)'}`,
    `  flags:        ${r.flags.length ? r.flags.join(' ') : '(none)'}`,
    ...(a.everyMs !== undefined
      ? [`  every:        sync keeps running and syncs this account every ${formatDelay(a.everyMs)} (every:)`]
      : []),
    ...providerLines(a),
    ...(r.skipLargerThan != null
      ? [`  skip:         messages larger than ${r.skipLargerThan} bytes are not copied (skip_larger_than)`]
      : []),
    `  rules:        ${r.rules.length ? '' : '(none)'}`,
    ...r.rules.map((x, i) => `    ${i + 1}. ${describeRule(x)}`),
    `  default:      ${r.defaultFolder}`,
  ];
  return lines.join('\n');
}

/** describeAccount's facts as data, for `config check --json`; the same checks run, secrets stay masked. */
function accountJson(a: ConfiguredAccount, env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  compileRouting(a.routing);
  providerLines(a);
  const r = a.routing;
  return {
    name: a.name,
    index: a.index,
    source: { endpoint: endpoint('pop3', a.pop), password: describePassword(a.pop, env), caFile: a.pop.caFile ?? null },
    destination: {
      endpoint: endpoint('imap', a.imap),
      password: describePassword(a.imap, env),
      caFile: a.imap.caFile ?? null,
    },
    journal: a.journal ?? null,
    transfer: {
      batchMessages: a.batchMessages,
      batchMb: a.batchMb,
      timeoutSeconds: a.timeoutSeconds,
      reconnectAttempts: a.reconnectAttempts,
      appendConnections: appendConnectionsOf(a),
    },
    arrivalDate: r.arrivalDate,
    seen: r.seen.map(stepName),
    flags: r.flags,
    everyMs: a.everyMs ?? null,
    skipLargerThan: r.skipLargerThan ?? null,
    rules: r.rules.map(describeRule),
    defaultFolder: r.defaultFolder,
  };
}

export function registerConfig(program: Command): void {
  const config = program.command('config').description('Work with popsync.yml configuration files.');
  config
    .command('check')
    .description('Validate a config file and print what it resolves to (secrets masked). Connects to nothing.')
    .argument('<file>', 'the YAML config file')
    .option('--json', 'print one JSON object: the file and what each account resolves to')
    .action(async (file: string, opts: { json?: boolean }) => {
      // yaml and zod load only when a config file is read (start-up of every other command).
      const { loadConfigFile } = await import('../../config/load.js');
      const loaded = loadConfigFile(file);
      const accounts = configuredAccounts(loaded);
      for (const a of accounts) {
        checkConfigUrls(loaded, a.index, { pop: a.pop.url, imap: a.imap.url });
        // What every run refuses at start (the file is not opened: checking connects and creates nothing).
        if (a.journal !== undefined) refuseDirectory(a.journal, configJournal(loaded, a.index));
      }
      if (opts.json === true) {
        process.stdout.write(
          `${JSON.stringify({ path: loaded.path, ok: true, accounts: accounts.map((a) => accountJson(a)) })}\n`,
        );
        return;
      }
      const text = accounts.map((a) => describeAccount(a)).join('\n\n');
      process.stdout.write(
        `${loaded.path}: OK, ${accounts.length} account${accounts.length === 1 ? '' : 's'}\n\n${text}\n`,
      );
    });
}
