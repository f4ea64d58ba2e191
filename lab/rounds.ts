/**
 * Repeated runs summed up: the bench's whole-process rounds (bench.ts) and the alternating pairs
 * (pairs.ts). One run of a whole process moves by a quarter on a shared machine, so a ratio of
 * two single runs says little; the median of several, with their spread, and in how many
 * rounds a per-round ratio held, say what a figure is worth.
 */
import type { ServerCpuSplit } from './server-cpu.js';

/** The middle value; of an even count, the mean of the two middle ones. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('the median of no runs');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(xs: readonly number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

/**
 * Round by round, `num[i] / den[i]`: runs paired by the round they ran in (one right after the
 * other), so that what loaded the machine then falls on both.
 */
export function perRound(num: readonly number[], den: readonly number[]): number[] {
  if (num.length !== den.length || num.length === 0) throw new Error(`rounds to pair: ${num.length} and ${den.length}`);
  return num.map((n, i) => n / den[i]!);
}

/**
 * Dovecot's CPU over rounds: the median total, and each process name's median (0 in a round
 * where it did not show), largest first. The parts need not add up to the total.
 */
export function medianServerCpu(runs: readonly ServerCpuSplit[]): ServerCpuSplit {
  const names = new Set(runs.flatMap((r) => r.byName.map(([name]) => name)));
  const byName = [...names]
    .map((name): [string, number] => [name, median(runs.map((r) => r.byName.find(([n]) => n === name)?.[1] ?? 0))])
    .filter(([, ms]) => ms > 0)
    .sort((a, b) => b[1] - a[1]);
  return { totalMs: median(runs.map((r) => r.totalMs)), byName };
}

/** How many rounds a value given in the environment asks for: unset, the default; else a whole number from 1. */
export function roundCount(value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_REPEAT ${JSON.stringify(value)}: a whole number from 1`);
  return n;
}
