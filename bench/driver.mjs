// driver.mjs -- what es-bench's node helpers (duckdb/peer.mjs,
// http/load.mjs) share: their protocol with es-bench is "--flag value"
// arguments in, lines on stdout out, and a one-line message on stderr
// with exit status 1 on failure.

// A line on stdout.
export const out = (line) => process.stdout.write(line + '\n');

// A fail(msg) that prints "<who>: msg" on stderr and exits 1.
export function failer(who) {
  return (msg) => {
    process.stderr.write(`${who}: ${msg}\n`);
    process.exit(1);
  };
}

// "--name value" pairs into {name: value}; anything else is fatal.
export function parseArgs(argv, fail) {
  const a = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length)
      fail(`bad argument '${argv[i]}'`);
    a[argv[i].slice(2)] = argv[i + 1];
  }
  return a;
}
