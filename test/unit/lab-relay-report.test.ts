/**
 * How the bench reads what its measured children leave: a relay process's report on stdout
 * (lab/relay-spec.ts) and /usr/bin/time's rusage (lab/measured-child.ts). A misread would put
 * a wrong figure in a row without a word, so anything that is not a whole report throws.
 */
import { describe, expect, it } from 'vitest';
import { parseTimeReport } from '../../lab/measured-child.js';
import { formatRelayReport, parseRelayReport } from '../../lab/relay-spec.js';

describe('relay process report', () => {
  it('reads the last line the process wrote, as it formats it', () => {
    const out = `a warning first\n${formatRelayReport({ copyMs: 123.4, copied: 20 })}`;
    expect(parseRelayReport(out, 20)).toEqual({ copyMs: 123.4, copied: 20 });
  });
  it('throws on no report, a partial one, or another count', () => {
    expect(() => parseRelayReport('', 20)).toThrow(/no report/);
    expect(() => parseRelayReport('{"copied":20}\n', 20)).toThrow(/not one/);
    expect(() => parseRelayReport('{"copyMs":-1,"copied":20}\n', 20)).toThrow(/not one/);
    expect(() => parseRelayReport(formatRelayReport({ copyMs: 5, copied: 19 }), 20)).toThrow(/19 of 20/);
  });
});

describe('/usr/bin/time report', () => {
  it("adds user and system time and reads peak RSS from the last line, after a failed child's notice", () => {
    expect(parseTimeReport('0.31 0.05 93712\n')).toEqual({ cpuMs: 360, peakKb: 93712 });
    expect(parseTimeReport('Command exited with non-zero status 1\n1.20 0.07 120004\n')).toEqual({
      cpuMs: 1270,
      peakKb: 120004,
    });
  });
  it('throws when there are no figures', () => {
    expect(() => parseTimeReport('')).toThrow(/no rusage/);
    expect(() => parseTimeReport('Command terminated by signal 9\n')).toThrow(/no rusage/);
  });
});
