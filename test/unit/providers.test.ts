/**
 * The pure parts of provider profiles and upload limits: profiles and their folder refusals,
 * the daily budget's arithmetic, the rate limiter's schedule, throttling hints and bounds, and
 * per-mailbox connection slots. No sockets, no timers: every clock is a number passed in.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createHostSlots } from '../../src/app/host-slots.js';
import { hostKeys, mailboxSlotLimit, mailboxSlotLimits } from '../../src/cli/account-list.js';
import { accountJobs, type AccountJob } from '../../src/cli/account.js';
import {
  missingLoginProblem,
  PROVIDERS,
  providerProfile,
  refusedFolderProblem,
  transferLimits,
  appendConnectionsProblem,
} from '../../src/config/providers.js';
import { parseRate } from '../../src/config/units.js';
import { BUDGET_WINDOW_MS, DailyBudget, daysNeeded, recentUploads } from '../../src/engine/budget.js';
import { guardingFolders } from '../../src/engine/folder-guard.js';
import { appendLimitOf, exactSize, planCopy, roughSize } from '../../src/engine/plan.js';
import { buildPlanReport } from '../../src/report/plan-report.js';
import { estimateText } from '../../src/report/plan-stats.js';
import { RateLimiter } from '../../src/engine/rate.js';
import { MIN_PAUSE_MS, ThrottleBudget } from '../../src/engine/throttle.js';
import { isPopsyncError } from '../../src/errors.js';
import { classifyAppendError, mapCommandError } from '../../src/imap/errors.js';
import { throttleHintMs } from '../../src/imap/throttle.js';
import type { ImapSink } from '../../src/imap/types.js';

const H = 3600_000;
const T0 = Date.parse('2026-11-29T10:00:00Z');

describe('provider profiles', () => {
  it('knows the four providers, case-insensitively, and names them when the name is wrong', () => {
    expect(providerProfile('Gmail').imap).toEqual({ host: 'imap.gmail.com', port: 993, tls: 'implicit' });
    expect(providerProfile('microsoft365').imap.host).toBe('outlook.office365.com');
    expect(providerProfile('outlook').imap.host).toBe('outlook.office365.com');
    expect(providerProfile('fastmail').imap.host).toBe('imap.fastmail.com');
    let err: unknown;
    try {
      providerProfile('yahoo');
    } catch (e) {
      err = e;
    }
    expect(isPopsyncError(err) && err.kind).toBe('usage');
    expect(String((err as Error).message)).toMatch(
      /unknown provider "yahoo"; known: gmail, microsoft365, outlook, fastmail/,
    );
  });

  it("carries Gmail's published limits", () => {
    const g = PROVIDERS.gmail;
    expect(g.maxConnectionsPerMailbox).toBe(15);
    expect(g.dailyUploadBytes).toBe(500_000_000);
    expect(g.appendLimit).toBe(35_651_584);
  });

  it("refuses Gmail's All Mail by name (any case, either spelling) and by role, and nothing else", () => {
    const g = PROVIDERS.gmail;
    expect(refusedFolderProblem(g, '[Gmail]/All Mail')).toMatch(
      /Gmail: popsync never copies into "\[Gmail\]\/All Mail"/,
    );
    expect(refusedFolderProblem(g, '[gmail]/all mail')).not.toBeNull();
    expect(refusedFolderProblem(g, '[Google Mail]/All Mail')).not.toBeNull();
    expect(refusedFolderProblem(g, '\\All')).toMatch(/INBOX or a label/);
    for (const ok of ['INBOX', 'Old mail', '[Gmail]/Sent Mail', 'Archive/{year}', '\\Archive'])
      expect(refusedFolderProblem(g, ok)).toBeNull();
    expect(refusedFolderProblem(PROVIDERS.fastmail, '\\All')).toBeNull();
  });

  it('asks for a token command on Microsoft when no credential is given, and leaves a given one alone', () => {
    expect(missingLoginProblem(PROVIDERS.microsoft365, { password: false, token: false })).toMatch(
      /^Microsoft 365 takes OAuth2 only .* give --imap-oauth2-token-command CMD/,
    );
    expect(missingLoginProblem(PROVIDERS.outlook, { password: false, token: true })).toBeNull();
    expect(missingLoginProblem(PROVIDERS.outlook, { password: true, token: false })).toBeNull();
    expect(missingLoginProblem(PROVIDERS.gmail, { password: false, token: false })).toBeNull();
  });

  it("puts the user's own rate and budget over the provider's", () => {
    expect(transferLimits(PROVIDERS.gmail, {})).toMatchObject({
      maxRate: null,
      dailyBudget: { bytes: 500_000_000, basis: "Gmail's daily IMAP upload limit" },
      appendLimit: 35_651_584,
    });
    expect(transferLimits(PROVIDERS.gmail, { dailyBudget: 100, maxRate: 5 })).toMatchObject({
      maxRate: 5,
      dailyBudget: { bytes: 100 },
    });
    expect(transferLimits(PROVIDERS.microsoft365, {})).toMatchObject({ dailyBudget: null, appendLimit: null });
    expect(transferLimits(null, {})).toEqual({ provider: null, maxRate: null, dailyBudget: null, appendLimit: null });
  });

  it('reads rates as sizes per second', () => {
    expect(parseRate('2M')).toBe(2 * 1024 * 1024);
    expect(parseRate('512KB/s')).toBe(512 * 1024);
    expect(parseRate('100000')).toBe(100000);
    expect(parseRate(4096)).toBe(4096);
    for (const bad of ['0', 'fast', '2 M/min', '-1']) expect(parseRate(bad)).toBeNull();
  });
});

describe('daily budget', () => {
  const rows = [
    { copiedAt: new Date(T0 - 30 * H).toISOString(), size: 999 }, // outside the window
    { copiedAt: new Date(T0 - 20 * H).toISOString(), size: 300 },
    { copiedAt: null, size: 5000 }, // never copied
    { copiedAt: new Date(T0 - 2 * H).toISOString(), size: 500 },
  ];

  it('counts the copies of the last 24 hours from the journal rows, oldest first', () => {
    expect(recentUploads(rows, new Date(T0))).toEqual([
      { at: T0 - 20 * H, bytes: 300 },
      { at: T0 - 2 * H, bytes: 500 },
    ]);
  });

  it('lets through the longest prefix that fits, in server order', () => {
    const b = new DailyBudget(1000, recentUploads(rows, new Date(T0)));
    expect(b.used(T0)).toBe(800);
    expect(b.remaining(T0)).toBe(200);
    // 150 fits, 100 would not after it; the 10 behind it waits too (order is kept).
    expect(b.fittingPrefix([150, 100, 10], T0)).toBe(1);
    b.spend(150, T0);
    expect(b.remaining(T0)).toBe(50);
  });

  it('says when enough of the window has aged out, and never for a message larger than the budget', () => {
    const b = new DailyBudget(1000, recentUploads(rows, new Date(T0)));
    expect(b.resumeAt(200, T0)).toBe(T0);
    // 300 more needs the 300-byte copy of 20 h ago to leave the window: 4 h from now.
    expect(b.resumeAt(300, T0)).toBe(T0 - 20 * H + BUDGET_WINDOW_MS);
    // 600 needs both to leave.
    expect(b.resumeAt(600, T0)).toBe(T0 - 2 * H + BUDGET_WINDOW_MS);
    expect(b.resumeAt(1001, T0)).toBeNull();
    // A day later everything fits again.
    expect(b.remaining(T0 + BUDGET_WINDOW_MS)).toBe(1000);
  });

  it('predicts the days a copy needs', () => {
    expect(daysNeeded([], 500, 0)).toBe(0);
    expect(daysNeeded([250, 250], 500, 0)).toBe(1);
    expect(daysNeeded([250, 251], 500, 0)).toBe(2);
    // Whole messages: 3 of 200 fit twice a day in 500, not 2.5.
    expect(daysNeeded([200, 200, 200, 200, 200], 500, 0)).toBe(3);
    expect(daysNeeded([100, 500, 500], 500, 400)).toBe(3); // 100 today, then one a day
    expect(daysNeeded([100], 500, 500)).toBe(2); // nothing left today
    expect(daysNeeded([600, 100], 500, 0)).toBe(1); // larger than the budget: never copied
  });
});

describe('--max-rate', () => {
  it('lets one second through at once, then spaces uploads at the rate', () => {
    const r = new RateLimiter(1000);
    // Before each upload, what went before it is at most rate x (elapsed + 1 s).
    expect(r.reserve(1000, T0)).toBe(0); // nothing before it
    expect(r.reserve(500, T0)).toBe(0); // 1000 before it: one second's worth, the burst
    expect(r.reserve(500, T0)).toBe(500); // 1500 before it: half a second later
    expect(r.reserve(1000, T0)).toBe(1000); // 2000 before it
  });

  it('never lets more than rate x (T + 1 s) out in T seconds, whatever the batch sizes', () => {
    const rate = 2 * 1024 * 1024;
    const r = new RateLimiter(rate);
    let clock = T0;
    let sent = 0;
    const sizes = [5_000_000, 10, 300_000, 7_777_777, 1, 2_000_000, 4_000_000];
    for (const size of sizes) {
      clock += r.reserve(size, clock); // the caller sleeps, then sends
      expect(sent).toBeLessThanOrEqual((rate * (clock - T0 + 1000)) / 1000);
      sent += size;
    }
    // And it is not slower than needed: the last send starts when the rest was due.
    expect(clock - T0).toBeLessThanOrEqual(((sent - sizes.at(-1)!) / rate) * 1000);
  });

  it('takes back a reservation never sent: what follows is due as if it had not been made', () => {
    const r = new RateLimiter(1000);
    expect(r.reserve(1000, T0)).toBe(0);
    expect(r.reserve(1000, T0)).toBe(0); // the burst
    r.giveBack(1000);
    // Kept, these waited 1000 and 1500 ms.
    expect(r.reserve(500, T0)).toBe(0);
    expect(r.reserve(500, T0)).toBe(500);
  });

  it('gives an idle limiter back its burst, and refuses a rate of 0', () => {
    const r = new RateLimiter(100);
    r.reserve(1000, T0);
    expect(r.reserve(10, T0 + 60_000)).toBe(0);
    expect(() => new RateLimiter(0)).toThrow(RangeError);
  });
});

describe('throttling', () => {
  it('reads the pause from a Microsoft 365 throttling reply, in any of its spellings', () => {
    expect(throttleHintMs('NO Request is throttled. Suggested Backoff Time: 12345 milliseconds')).toBe(12345);
    expect(throttleHintMs('BAD Request is throttled. Suggested Backoff Time: 92415 milliseconds')).toBe(92415);
    expect(throttleHintMs('NO Request is throttled. Suggested Backoff Time=300')).toBe(300);
    expect(throttleHintMs('NO Request is throttled. Suggested Backoff Time: 2 seconds')).toBe(2000);
    expect(throttleHintMs('NO [OVERQUOTA] Quota exceeded')).toBeNull();
    expect(throttleHintMs('NO Request is throttled.')).toBeNull();
    expect(throttleHintMs(undefined)).toBeNull();
  });

  it('makes a throttled APPEND (pipelined or imapflow) or command a temporary error with the pause', () => {
    const line = 'A7 NO Request is throttled. Suggested Backoff Time: 4000 milliseconds';
    const pipelined = classifyAppendError(
      { message: 'x', responseStatus: 'NO', response: line, code: 'ETHROTTLE' },
      'INBOX',
    );
    expect(pipelined.scope).toBe('session');
    expect(pipelined.error.kind).toBe('temporary');
    expect(pipelined.error.context.retryAfterMs).toBe(4000);
    // imapflow parsed the hint itself (throttleReset) after waiting part of it.
    const flow = classifyAppendError(
      { message: 'x', responseStatus: 'BAD', code: 'ETHROTTLE', throttleReset: 9000 },
      'INBOX',
    );
    expect(flow.error.context.retryAfterMs).toBe(9000);
    // A NO with the words but no ETHROTTLE code (imapflow's own test needs both words; so do we).
    const plain = classifyAppendError({ message: 'x', responseStatus: 'NO', response: line }, 'INBOX');
    expect(plain).toMatchObject({ scope: 'session', error: { kind: 'temporary' } });
    const cmd = mapCommandError({ message: 'x', responseStatus: 'NO', response: line }, 'STATUS', 'INBOX');
    expect(cmd.kind).toBe('temporary');
    expect(cmd.context.retryAfterMs).toBe(4000);
    // Anything else keeps its kind and has no pause.
    const quota = classifyAppendError(
      { message: 'x', responseStatus: 'NO', response: 'A8 NO [OVERQUOTA] full' },
      'INBOX',
    );
    expect(quota.scope).toBe('message');
    expect(quota.error.context.retryAfterMs).toBeUndefined();
  });

  it('waits as asked within bounds, at least a second each time, and stops beyond them with when to come back', () => {
    const t = new ThrottleBudget({ maxWaitMs: 10_000, totalMs: 12_000 });
    expect(t.decide(4000, T0)).toEqual({ wait: 4000 });
    expect(t.decide(0, T0)).toEqual({ wait: MIN_PAUSE_MS });
    expect(t.decide(6000, T0)).toEqual({ wait: 6000 });
    expect(t.times).toBe(3);
    expect(t.waitedMs).toBe(11_000);
    const total = t.decide(2000, T0);
    expect(total).toMatchObject({ resumeAt: T0 + 2000 });
    expect('stop' in total && total.stop).toMatch(/pauses 4 times \(11 s waited already, at most 12 s per run\)/);
    const long = new ThrottleBudget({ maxWaitMs: 10_000, totalMs: 60_000 }).decide(3_600_000, T0);
    expect(long).toMatchObject({ resumeAt: T0 + 3_600_000 });
    expect('stop' in long && long.stop).toMatch(/a pause of 3600 s, more than the 10 s popsync waits at once/);
  });
});

describe('sizes in messages', () => {
  it('writes limits exactly and measured amounts roughly', () => {
    expect(exactSize(35_651_584)).toBe('34 MiB');
    expect(exactSize(1000)).toBe('1000 bytes');
    expect([exactSize(1), roughSize(1), roughSize(0)]).toEqual(['1 byte', '1 byte', '0 bytes']);
    expect(roughSize(500_000_000)).toBe('476.8 MiB');
    expect(appendLimitOf(['IMAP4rev1', 'APPENDLIMIT=35651584'])).toBe(35_651_584);
    expect(appendLimitOf(['APPENDLIMIT'])).toBeNull();
  });
});

describe('connection caps per destination mailbox', () => {
  const job = (user: string, provider: 'gmail' | null): AccountJob => ({
    input: {
      name: user,
      pop: { url: `pop3s://${user}@pop.old.example` },
      imap: { url: `imaps://${user}@imap.gmail.com` },
      timeoutSeconds: 60,
    },
    routing: { rules: [], defaultFolder: 'INBOX', flags: [], seen: [], arrivalDate: true },
    batchMessages: 50,
    batchBytes: 1,
    reconnectAttempts: 5,
    limits: transferLimits(provider === null ? null : PROVIDERS[provider], {}),
  });

  it('keeps the accounts copying into one Gmail mailbox within its 15 connections (3 runs of at most 5)', async () => {
    // imapflow's, Gmail's 3 APPEND connections and a streaming one: 5 per run.
    expect(mailboxSlotLimit(job('me', 'gmail'))).toBe(3);
    const one = job('me', 'gmail');
    one.input.imap.appendConnections = 1;
    expect(mailboxSlotLimit(one)).toBe(5);
    expect(mailboxSlotLimit(job('me', null))).toBeUndefined();
    expect(hostKeys(job('me', 'gmail'))).toEqual([
      'pop3 pop.old.example',
      'imap imap.gmail.com',
      'imap-mailbox me@imap.gmail.com',
    ]);
    expect(hostKeys(job('me', null))).toHaveLength(2);
    const jobs = Array.from({ length: 10 }, () => job('me', 'gmail'));
    const limits = mailboxSlotLimits(jobs);
    const slots = createHostSlots(100, (k) => limits.get(k));
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await slots.acquire(hostKeys(jobs[i]!)));
    let fourth = false;
    const wait = slots.acquire(hostKeys(jobs[3]!)).then((r) => {
      fourth = true;
      return r;
    });
    await new Promise((r) => setImmediate(r));
    expect(fourth).toBe(false);
    expect(slots.inUse('imap-mailbox me@imap.gmail.com')).toBe(3);
    held[0]!();
    (await wait)();
    expect(fourth).toBe(true);
  });
});

describe('folder guard', () => {
  function fakeSink(roles: Map<string, string>, log: string[]): ImapSink {
    return {
      capabilities: new Set(),
      ensureFolder: async (p) => {
        log.push(`ensure ${p}`);
        return { path: p, uidValidity: 1n, uidNext: 1 };
      },
      status: async (p) => ({ path: p, uidValidity: 1n, uidNext: 1 }),
      appendBatch: async (p) => {
        log.push(`append ${p}`);
        return [];
      },
      listSince: async () => [],
      fetchBody: async () => Buffer.alloc(0),
      scanHeaders: async () => null,
      readBodies: async () => undefined,
      specialUse: async () => roles,
      close: async () => void log.push('close'),
    };
  }
  const guard = {
    names: PROVIDERS.gmail.refusedFolders,
    roles: PROVIDERS.gmail.refusedRoles,
    refusal: (f: string) => `refused ${f}`,
  };

  it('refuses the folder the server marks \\All under any name, and lets every other folder through', async () => {
    const log: string[] = [];
    const open = guardingFolders(guard, async () => fakeSink(new Map([['\\All', '[Gmail]/Alle Nachrichten']]), log));
    const sink = await open();
    await sink.ensureFolder('INBOX');
    await sink.appendBatch('Work', []);
    await expect(sink.ensureFolder('[Gmail]/Alle Nachrichten')).rejects.toMatchObject({ kind: 'config' });
    await expect(sink.appendBatch('[gmail]/all mail', [])).rejects.toThrow('refused [gmail]/all mail');
    expect(log).toEqual(['ensure INBOX', 'append Work']);
  });
});

describe('--provider and provider: reach the job', () => {
  const flags = { getOptionValueSource: (k: string) => (k === 'provider' ? 'cli' : undefined) };
  const common = { pop: 'pop3s://me@pop.old.example', popPasswordEnv: 'P', imapPasswordEnv: 'I' };

  it('fills in the IMAP host only when none is given, and applies the profile under the user settings', async () => {
    const [job] = await accountJobs({ ...common, imapUser: 'me@gmail.com', provider: 'gmail' }, flags);
    expect(job!.input.imap.host).toBe('imap.gmail.com');
    expect(job!.limits).toMatchObject({ dailyBudget: { bytes: 500_000_000 }, appendLimit: 35_651_584 });
    const [own] = await accountJobs(
      { ...common, imap: 'imap://me@127.0.0.1:1143', provider: 'gmail', dailyBudget: 1000, maxRate: 2048 },
      flags,
    );
    expect(own!.input.imap.host).toBeUndefined(); // the URL's host stands
    expect(own!.limits).toMatchObject({ maxRate: 2048, dailyBudget: { bytes: 1000 }, appendLimit: 35_651_584 });
  });

  it("takes Gmail's 3 APPEND connections unless told, and refuses more than its 15 connections leave", async () => {
    const [job] = await accountJobs({ ...common, imapUser: 'me@gmail.com', provider: 'gmail' }, flags);
    expect(job!.input.imap.appendConnections).toBe(3);
    const [own] = await accountJobs(
      { ...common, imapUser: 'me@gmail.com', provider: 'gmail', appendConnections: 13 },
      flags,
    );
    expect(own!.input.imap.appendConnections).toBe(13);
    await expect(
      accountJobs({ ...common, imapUser: 'me@gmail.com', provider: 'gmail', appendConnections: 14 }, flags),
    ).rejects.toMatchObject({ kind: 'usage', message: expect.stringMatching(/give at most 13$/) });
    expect(appendConnectionsProblem(PROVIDERS.gmail, 13)).toBeNull();
    expect(appendConnectionsProblem(PROVIDERS.microsoft365, 16)).toBeNull();
  });

  it('refuses All Mail as the folder of a Gmail destination before anything runs', async () => {
    await expect(
      accountJobs({ ...common, imapUser: 'me@gmail.com', provider: 'gmail', folder: '[Gmail]/All Mail' }, flags),
    ).rejects.toMatchObject({
      kind: 'usage',
      message: expect.stringMatching(/never copies into "\[Gmail\]\/All Mail"/),
    });
  });

  it('reads provider:, max_rate:, daily_budget: from a config file; refuses an unknown provider by key', async () => {
    const d = mkdtempSync(join(tmpdir(), 'popsync-providers-'));
    try {
      const file = join(d, 'popsync.yml');
      writeFileSync(
        file,
        'defaults:\n  max_rate: 512KB/s\naccounts:\n  - name: a\n' +
          `    source: { url: 'pop3s://u@pop.example', password_env: P }\n` +
          `    destination: { user: me@gmail.com, provider: gmail, password_env: I }\n    daily_budget: 100MB\n` +
          `    rules: [{ match: { from: '*@x.example' }, folder: '\\All' }]\n`,
      );
      await expect(accountJobs({ config: file }, { getOptionValueSource: () => undefined })).rejects.toMatchObject({
        kind: 'usage',
        message: expect.stringMatching(/never copies into "\\All"/),
      });
      writeFileSync(file, readFileSync(file, 'utf8').replace(/\n {4}rules: .*\n/, '\n'));
      const [job] = await accountJobs({ config: file }, { getOptionValueSource: () => undefined });
      expect(job!.input.imap.host).toBe('imap.gmail.com');
      expect(job!.limits).toMatchObject({ maxRate: 512 * 1024, dailyBudget: { bytes: 100 * 1024 * 1024 } });
      writeFileSync(file, readFileSync(file, 'utf8').replace('provider: gmail', 'provider: yahoo'));
      await expect(accountJobs({ config: file }, { getOptionValueSource: () => undefined })).rejects.toThrow(
        /accounts\[0\]\.destination\.provider/,
      );
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('plan under a daily budget', () => {
  const routing = {
    folder: 'INBOX',
    flags: [],
    internalDate: null,
    dateSource: 'none',
    seenSource: null,
    folderRule: null,
  };
  const listing = [1, 2, 3, 4, 5].map((n) => ({ n, uidl: `u${n}`, size: n === 5 ? 900 : 200 }));
  const report = (budget: { bytesPerDay: number; usedToday: number; basis: string } | null) =>
    buildPlanReport({
      source: 's',
      destination: 'd',
      generatedAt: new Date(T0),
      listing,
      plan: planCopy(listing, new Map()),
      rows: new Map(),
      routed: new Map(listing.map((m) => [m.n, { routing, subject: null, from: null, messageId: null }])),
      existingFolders: new Set(['INBOX']),
      // The 900-byte message would fail: it takes no day.
      appendLimit: 500,
      rate: null,
      budget,
    });

  it('counts the days of whole messages the next runs would copy, and says so with the estimate', () => {
    const r = report({ bytesPerDay: 500, usedToday: 300, basis: "Gmail's daily IMAP upload limit" });
    // Four of 200 bytes: one today (300 used of 500), two a day after: 1 + 2 days.
    expect(r.budget).toEqual({ bytesPerDay: 500, usedToday: 300, basis: "Gmail's daily IMAP upload limit", days: 3 });
    expect(estimateText(r)).toBe(
      "no estimate (no transfer rate measured yet); 3 days at 500 B a day (Gmail's daily IMAP upload limit, " +
        '300 B used in the last 24 hours)',
    );
    expect(report(null).budget).toBeUndefined();
  });
});
