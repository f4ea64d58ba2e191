/**
 * Arrows point down: each folder of src/ may import only the layers below it. A new uphill
 * import fails here, and so does a known one that was removed without taking it off the list,
 * so the list below only ever shrinks.
 *
 * Layers, lowest first: errors.ts, defaults.ts, log.ts, printable.ts, tls.ts and connect-hints.ts
 * (everyone's), net/
 * (sockets, TLS options, SASL and redaction, written once for both protocols), then the
 * protocol clients and the journal (pop3/, imap/, journal/: nothing above them, nor each
 * other), mapping/ (pure routing),
 * engine/, report/ (reads engine types), config/ (reads mapping's rule types), app/, cli/. The
 * lab (top-level lab/, outside src/) is tooling: it may import the product, the product never
 * imports it, and dist/ holds none of it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(__dirname, '../../src');

/** What each top-level folder (or root file) may import besides itself. */
const ALLOWED: Record<string, readonly string[]> = {
  errors: [],
  defaults: [],
  log: [],
  printable: [],
  tls: [],
  // The file bin/popsync.js loads before the program also carries the old generation's setting
  // and the later tier-up.
  'young-generation': ['old-generation', 'tier-up', 'v8-flags'],
  // The flags V8 hashes into the code cache (v8-flags.ts), set through one module.
  'old-generation': ['v8-flags'],
  'tier-up': ['v8-flags'],
  'connect-hints': ['errors', 'defaults', 'tls'],
  net: ['errors', 'defaults', 'log', 'tls', 'connect-hints'],
  pop3: ['errors', 'defaults', 'log', 'tls', 'connect-hints', 'net'],
  imap: ['errors', 'defaults', 'log', 'tls', 'connect-hints', 'net'],
  journal: ['errors', 'defaults', 'log', 'printable'],
  mapping: ['errors', 'defaults', 'log'],
  oauth: ['errors', 'defaults', 'log'],
  // tier-up: the copy's later tier-up (copier.ts), a leaf that imports nothing of src/.
  engine: [
    'errors',
    'defaults',
    'log',
    'printable',
    'tls',
    'connect-hints',
    'net',
    'pop3',
    'imap',
    'journal',
    'mapping',
    'tier-up',
  ],
  report: ['errors', 'defaults', 'log', 'printable', 'tls', 'net', 'engine', 'mapping', 'journal'],
  config: ['errors', 'defaults', 'log', 'tls', 'net', 'mapping'],
  app: [
    'errors',
    'defaults',
    'log',
    'printable',
    'tls',
    'net',
    'pop3',
    'imap',
    'journal',
    'mapping',
    'engine',
    'report',
    'config',
  ],
  cli: [
    'errors',
    'defaults',
    'log',
    'printable',
    'tls',
    'connect-hints',
    'net',
    'pop3',
    'imap',
    'journal',
    'mapping',
    'oauth',
    'engine',
    'report',
    'config',
    'app',
  ],
};

/** Uphill imports that exist today, file -> imported file, to be removed by the restructuring. */
const KNOWN = new Set<string>([]);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

function layerOf(rel: string): string {
  const parts = rel.split('/');
  return parts.length > 1 ? parts[0]! : parts[0]!.replace(/\.ts$/, '');
}

/** Every relative import and re-export of src/, as 'from.ts -> to.ts' relative to src/. */
function importEdges(): Array<{ from: string; to: string }> {
  const edges: Array<{ from: string; to: string }> = [];
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+['"](\.[^'"]+)['"]/gms)) {
      const target = path.resolve(path.dirname(file), m[1]!).replace(/\.js$/, '.ts');
      edges.push({ from: path.relative(SRC, file), to: path.relative(SRC, target) });
    }
  }
  return edges;
}

describe('import direction', () => {
  const edges = importEdges();

  it('finds the imports it checks', () => {
    // A parser that silently found nothing would pass every rule below.
    expect(edges.length).toBeGreaterThan(200);
    expect(edges).toContainEqual({ from: 'engine/run.ts', to: 'engine/copier.ts' });
    expect(edges).toContainEqual({ from: 'app/run-account.ts', to: 'engine/run.ts' });
  });

  it('imports only point down, except the known ones being removed', () => {
    const uphill = edges
      .filter(({ from, to }) => {
        const a = layerOf(from);
        const b = layerOf(to);
        if (a === b) return false;
        const allowed = ALLOWED[a];
        return allowed === undefined || !allowed.includes(b);
      })
      .map(({ from, to }) => `${from} -> ${to}`);
    const unknown = uphill.filter((e) => !KNOWN.has(e));
    expect(unknown, 'new uphill imports (move the shared type down instead)').toEqual([]);
    const gone = [...KNOWN].filter((e) => !uphill.includes(e));
    expect(gone, 'fixed: remove these from KNOWN').toEqual([]);
  });

  it('the product never imports the lab', () => {
    // The lab lives outside src/ (lab/), so any import leaving src/ is one into tooling.
    const intoLab = edges.filter(({ to }) => to.startsWith('..'));
    expect(intoLab).toEqual([]);
  });
});
