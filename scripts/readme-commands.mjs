#!/usr/bin/env node
// Run the shell commands of README sections as a user would, so that the README and the
// program cannot drift apart: every ```sh block under the named `## ` headings is read
// from the README itself, continuation lines joined and comments dropped, and each
// command runs in bash in a work directory, which must exit 0.
//
//   node scripts/readme-commands.mjs --readme README.md --cwd DIR --section "Command line"
//        [--section NAME]... [--skip REGEX]... [--list]
//
// The work directory gets the files the commands name (my.csv, test.csv, new.csv: a
// small generated regression problem with target column `y`). Commands that are long by
// design (benchmarks, the paper's 25 runs) get flags appended that bound them (commander
// takes the last value of an option), listed in BOUNDS and printed with the command:
// the command itself is the README's. --list prints the commands and runs nothing.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** Appended to commands matching the pattern, to keep the run short (the README's flags come first). */
const BOUNDS = [
  [/\bmoe bench scaling\b/, '--quick --sizes small --workers 1,2 --experts 4'],
  [/\bmoe bench peers\b/, '--sizes small --rounds 1 --steps 3 --no-pytorch --no-breakdown'],
  [/\bmoe bench sparse\b/, '--size small --experts 4 --rounds 1 --steps 3 --no-skew'],
  [/\bmoe bench kernels\b/, '--time 1'],
  [/\bmoe reproduce\b/, '--runs 1 --epochs 1 --jobs 2'],
];

function parseArgs(argv) {
  const o = { readme: 'README.md', cwd: '.', sections: [], skip: [], list: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--readme') o.readme = value();
    else if (a === '--cwd') o.cwd = value();
    else if (a === '--section') o.sections.push(value());
    else if (a === '--skip') o.skip.push(new RegExp(value()));
    else if (a === '--list') o.list = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (o.sections.length === 0) throw new Error('give at least one --section');
  return o;
}

/** The commands of the ```sh blocks under `## <section>` (up to the next `## `). */
export function sectionCommands(markdown, section) {
  const lines = markdown.split(/\r?\n/);
  const start = lines.findIndex((l) => l.trim() === `## ${section}`);
  if (start < 0) throw new Error(`the README has no section "## ${section}"`);
  const commands = [];
  let inBlock = false;
  let pending = '';
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i];
    if (!inBlock && /^## /.test(line)) break;
    if (/^```/.test(line)) {
      inBlock = !inBlock && /^```(sh|bash|shell)\s*$/.test(line);
      continue;
    }
    if (!inBlock) continue;
    // A comment after the command: `  # …` (a `#` inside a word, e.g. a URL fragment, stays).
    const text = line.replace(/(^|\s+)#\s.*$/, '').replace(/\s+$/, '');
    if (text.endsWith('\\')) {
      pending += text.slice(0, -1).trim() + ' ';
      continue;
    }
    const command = (pending + text.trim()).trim();
    pending = '';
    if (command !== '') commands.push(command);
  }
  if (commands.length === 0) throw new Error(`"## ${section}" has no sh commands`);
  return commands;
}

/** A small regression problem: two regimes of y in x1, for the README's my.csv, test.csv and new.csv. */
function writeData(dir) {
  let seed = 12345;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const rows = (n, withTarget) => {
    const out = [withTarget ? 'x1,x2,x3,y' : 'x1,x2,x3'];
    for (let r = 0; r < n; r++) {
      const x = [rnd() * 4 - 2, rnd() * 4 - 2, rnd()];
      const y = (x[0] < 0 ? 2 * x[1] : -x[1] + 3) + 0.1 * (rnd() - 0.5);
      out.push([...x, ...(withTarget ? [y] : [])].map((v) => v.toFixed(4)).join(','));
    }
    return out.join('\n') + '\n';
  };
  writeFileSync(resolve(dir, 'my.csv'), rows(300, true));
  writeFileSync(resolve(dir, 'test.csv'), rows(100, true));
  writeFileSync(resolve(dir, 'new.csv'), rows(20, false));
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  const markdown = readFileSync(o.readme, 'utf8');
  const commands = o.sections.flatMap((s) => sectionCommands(markdown, s)).filter((c) => !o.skip.some((re) => re.test(c)));
  if (o.list) {
    for (const c of commands) console.log(c);
    return 0;
  }
  mkdirSync(o.cwd, { recursive: true });
  writeData(o.cwd);
  const t0 = Date.now();
  for (const command of commands) {
    const bound = BOUNDS.find(([re]) => re.test(command));
    const run = bound ? `${command} ${bound[1]}` : command;
    const start = Date.now();
    console.log(`\n$ ${command}${bound ? `   [bounded: + ${bound[1]}]` : ''}`);
    const r = spawnSync('bash', ['-c', run], { cwd: o.cwd, stdio: 'inherit', env: { ...process.env } });
    const s = ((Date.now() - start) / 1000).toFixed(1);
    if (r.status !== 0) {
      console.error(`readme-commands: FAILED (exit ${r.status ?? r.signal}, ${s} s): ${run}`);
      return 1;
    }
    console.log(`readme-commands: ok (${s} s)`);
  }
  console.log(`\nreadme-commands: ${commands.length} commands of ${o.sections.map((s) => `"${s}"`).join(', ')} ran in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main();
