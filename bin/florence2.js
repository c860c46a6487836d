#!/usr/bin/env node
// The package's command: the compiled CLI (npm ci builds dist/ through the prepare script).
require('../dist/src/cli/main.js')
  .main(process.argv.slice(2))
  .then((code) => process.exit(code));
