// bin/popsync.js as at its first run after an install: its code cache (src/code-cache.ts) is
// removed first, and the run writes it again. For lab/pairs.ts's PAIRS_A (cold figures);
// XDG_CACHE_HOME must be set, so that no one's own cache is removed.
import { rmSync } from 'node:fs';
import { join } from 'node:path';

if (!process.env.XDG_CACHE_HOME) throw new Error('code-cache-cold: set XDG_CACHE_HOME');
rmSync(join(process.env.XDG_CACHE_HOME, 'popsync'), { recursive: true, force: true });
await import(new URL('../bin/popsync.js', import.meta.url).href);
