// No line over 120 characters in src/, lab/ and test/. Biome's formatter wraps code at 120 but
// never splits a string, a comment or a regular expression, so those are checked here.
// Usage: node test/scripts/line-length.mjs [dir or file...]; prints each long line and exits 1 if any.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const MAX = 120;
const dirs = process.argv.length > 2 ? process.argv.slice(2) : ['src', 'lab', 'test'];

function* files(dir) {
  if (!statSync(dir).isDirectory()) {
    yield dir;
    return;
  }
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (/\.(ts|mts|js|mjs|cjs|sh)$/.test(e.name)) yield p;
  }
}

let long = 0;
for (const dir of dirs) {
  for (const file of files(dir)) {
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        // Code points, not UTF-16 units: an emoji or a CJK character is one column to a reader.
        const width = [...line].length;
        if (width <= MAX) return;
        long++;
        console.log(`${file}:${i + 1}: ${width} characters (max ${MAX})`);
      });
  }
}
if (long > 0) {
  console.log(`line length: ${long} line(s) over ${MAX} characters; split the string or comment`);
  process.exit(1);
}
