/**
 * Microsoft 365 and Outlook.com refuse commands while a mailbox is busy with
 * `NO Request is throttled. Suggested Backoff Time: 12345 milliseconds` (also seen with BAD,
 * and with `=` instead of `:`). The number is the server's own estimate of when to come back;
 * the engine waits that long within its bounds (engine/throttle.ts).
 */
const THROTTLED = /Request is throttled/i;
const BACKOFF = /Backoff Time\s*[:=]?\s*(\d{1,12})\s*(milliseconds|ms|seconds|s)?\b/i;

/** The pause a throttling reply asks for, in ms; null when `text` is no throttling reply. */
export function throttleHintMs(text: string | undefined): number | null {
  if (text === undefined || !THROTTLED.test(text)) return null;
  const m = BACKOFF.exec(text);
  if (!m) return null;
  const n = Number(m[1]);
  return /^s/i.test(m[2] ?? '') ? n * 1000 : n;
}
