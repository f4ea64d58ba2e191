#!/usr/bin/env node
// Thin shim: the program lives in dist/ (built by `npm run build` in a checkout; shipped built in the npm package).
import('../dist/cli/main.js').then((m) => m.main(process.argv)).catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('popsync: not built yet. Run `npm run build` first.\n');
    process.exit(70);
  }
  throw err;
});
