/**
 * Made-up inputs for the tests that compare a rewritten function with the version it replaced:
 * the same seed gives the same inputs on every run and machine, so a failure replays. A linear
 * congruential step, of which only the high bits are used (its low bits cycle).
 */
export function seeded(seed: number): (k: number) => number {
  let s = seed;
  return (k) => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return (s >>> 16) % k;
  };
}

/** A text of 1 to `maxPieces` pieces, each drawn from `pieces` with `next`. */
export function joinedPieces(next: (k: number) => number, pieces: readonly string[], maxPieces: number): string {
  let text = '';
  const n = 1 + next(maxPieces);
  for (let j = 0; j < n; j++) text += pieces[next(pieces.length)];
  return text;
}
