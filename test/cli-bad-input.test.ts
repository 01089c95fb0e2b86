/**
 * Every bad input the CLI must refuse: it exits non-zero with the documented code, prints
 * exactly one line on stderr naming the file, row, column or option (no stack trace
 * unless --verbose), prints nothing on stdout and writes no output file.
 */
import { existsSync, lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, moe, requireBuild } from './fixtures/cli/harness.js';
import { hiddenBlasEnv } from './helpers/backends.js';
import { makeCharDevice, makeFifo, makeUnwritableDir, unwritableDirWorks } from './helpers/files.js';

const CLASSES = join(FIXTURES, 'classes.csv');
const REGRESSION = join(FIXTURES, 'regression.csv');

let dir: string;
/** A trained 3-expert classification model (a, b → label low/mid/high), and broken copies of it. */
let model: string;

/** Files the cases refer to by name ({f:NAME}); written once in beforeAll. */
const FILES: Record<string, string> = {
  'empty.csv': '',
  'header.csv': 'a,b,label\n',
  'ragged.csv': 'a,b,label\n1,2,low\n3,4\n5,6,mid\n',
  'text.csv': 'a,b,label\n1,2,low\n3,abc,mid\n',
  'nan.csv': 'a,b,label\n1,2,low\n3,NaN,mid\n',
  'inf.csv': 'a,b,label\n1,2,low\n-Inf,4,mid\n',
  'huge.csv': 'a,b,label\n1,2,low\n1e39,4,mid\n',
  'one-class.csv': 'a,b,label\n1,2,low\n3,4,low\n5,6,low\n',
  'unseen.csv': 'a,b,label\n1,2,low\n3,4,purple\n',
  'no-b.csv': 'a,c\n1,2\n3,4\n',
  'one-column.csv': 'a\n1\n2\n',
  'not-a-model.json': '{"hello": "world"}',
  'huge-name.csv': `${'h'.repeat(1_000_000)},label\n1,low\n2,mid\n`,
};

// What this system lets a test make (known when the table is built).
const probe = mkdtempSync(join(tmpdir(), 'moe-bad-probe-'));
const canMknod = makeCharDevice(join(probe, 'dev'));
const canMkfifo = makeFifo(join(probe, 'fifo'));
const canLock = await unwritableDirWorks(join(probe, 'locked'));
rmSync(probe, { recursive: true, force: true });
/** Undoes the unwritable directory (chattr -i / chmod) before the temp dir is removed. */
let unlock: (() => Promise<void>) | undefined;

beforeAll(async () => {
  requireBuild();
  dir = await mkdtemp(join(tmpdir(), 'moe-bad-'));
  await Promise.all(Object.entries(FILES).map(([name, text]) => writeFile(join(dir, name), text)));
  // Outputs that must be refused: a link to a directory, special files, an unwritable directory.
  await mkdir(join(dir, 'adir'));
  await symlink('adir', join(dir, 'link-to-dir'));
  if (canMkfifo) expect(makeFifo(join(dir, 'fifo'))).toBe(true);
  if (canMknod) expect(makeCharDevice(join(dir, 'chardev'))).toBe(true);
  if (canLock) unlock = await makeUnwritableDir(join(dir, 'locked'));
  model = join(dir, 'good.moe');
  const r = await moe(['train', '--data', CLASSES, '--target', 'label', '--task', 'classification', '--experts', '3', '--epochs', '3', '--save', model]);
  expect(r.code, r.stderr).toBe(0);
  const text = await readFile(model, 'utf8');
  const doc = JSON.parse(text) as { version: number; params: Record<string, string> };
  await writeFile(join(dir, 'truncated.moe'), text.slice(0, Math.floor(text.length / 2)));
  await writeFile(join(dir, 'empty.moe'), '');
  const p = doc.params.expertParams!;
  const corrupt = { ...doc, params: { ...doc.params, expertParams: (p[0] === 'A' ? 'B' : 'A') + p.slice(1) } };
  await writeFile(join(dir, 'corrupt.moe'), JSON.stringify(corrupt));
  const short = { ...doc, params: { ...doc.params, expertParams: p.slice(0, 8) } };
  await writeFile(join(dir, 'short.moe'), JSON.stringify(short));
  await writeFile(join(dir, 'v99.moe'), JSON.stringify({ ...doc, version: 99 }));
  await symlink('good.moe', join(dir, 'model-link'));
});
afterAll(async () => {
  await unlock?.();
  await rm(dir, { recursive: true, force: true });
  if (HIDDEN) await rm(HIDDEN.LD_LIBRARY_PATH!, { recursive: true, force: true });
});

interface Case {
  name: string;
  /** Arguments; {f:NAME} is a file in the temp dir, {model} the trained model, {out} this case's output dir. */
  args: string[];
  code: number;
  /** Every one must appear in the stderr line. */
  says: string[];
}

const TRAIN = ['train', '--target', 'label', '--task', 'classification', '--epochs', '2'];
const train = (data: string, ...more: string[]): string[] => [...TRAIN, '--data', data, ...more];

const CASES: Case[] = [
  // Data files
  { name: 'missing data file', args: train('{f:nothere.csv}'), code: 1, says: ['nothere.csv', 'not found'] },
  { name: 'empty file', args: train('{f:empty.csv}'), code: 1, says: ['empty.csv', 'empty'] },
  { name: 'header only', args: train('{f:header.csv}'), code: 1, says: ['header.csv', 'no data rows'] },
  { name: 'ragged rows', args: train('{f:ragged.csv}'), code: 1, says: ['ragged.csv', 'row 2', '2 fields'] },
  { name: 'non-numeric cell', args: train('{f:text.csv}'), code: 1, says: ['text.csv', 'row 2', 'column b', '"abc"'] },
  { name: 'NaN cell', args: train('{f:nan.csv}'), code: 1, says: ['nan.csv', 'row 2', 'column b', 'NaN'] },
  { name: 'Inf cell', args: train('{f:inf.csv}'), code: 1, says: ['inf.csv', 'row 2', 'column a', 'Inf'] },
  { name: 'cell beyond float32', args: train('{f:huge.csv}'), code: 1, says: ['huge.csv', 'row 2', 'column a', '1e39'] },
  { name: 'unknown target column', args: ['train', '--target', 'nope', '--task', 'classification', '--data', CLASSES], code: 2, says: ['--target', '"nope"', 'classes.csv'] },
  { name: 'unknown feature column', args: train(CLASSES, '--features', 'a,zz'), code: 2, says: ['--features', '"zz"', 'classes.csv'] },
  { name: 'target also a feature', args: train(CLASSES, '--features', 'a,label'), code: 2, says: ['--features', '"label"', 'target'] },
  { name: 'single class', args: train('{f:one-class.csv}'), code: 1, says: ['one-class.csv', 'one class', 'label'] },
  { name: 'unseen label in --test-data', args: train(CLASSES, '--test-data', '{f:unseen.csv}'), code: 1, says: ['unseen.csv', 'row 2', 'column label', '"purple"'] },
  // Labels and features at eval/predict time
  { name: 'eval: label unseen at training', args: ['eval', '--model', '{model}', '--data', '{f:unseen.csv}'], code: 1, says: ['unseen.csv', 'row 2', 'column label', '"purple"'] },
  { name: 'predict: label unseen at training', args: ['predict', '--model', '{model}', '--data', '{f:unseen.csv}', '--out', '{out}/p.csv'], code: 1, says: ['unseen.csv', 'row 2', 'column label', '"purple"'] },
  { name: 'predict: wrong feature columns', args: ['predict', '--model', '{model}', '--data', '{f:no-b.csv}', '--out', '{out}/p.csv'], code: 1, says: ['no-b.csv', 'column b', 'expects 2 features'] },
  { name: 'predict: too few features', args: ['predict', '--model', '{model}', '--data', '{f:one-column.csv}', '--out', '{out}/p.csv'], code: 1, says: ['one-column.csv', 'column b', 'expects 2 features'] },
  { name: 'eval: data lacks a model column', args: ['eval', '--model', '{model}', '--data', '{f:no-b.csv}'], code: 1, says: ['no-b.csv', 'column', 'does not fit the model'] },
  { name: 'predict: empty data', args: ['predict', '--model', '{model}', '--data', '{f:header.csv}', '--out', '{out}/p.csv'], code: 1, says: ['header.csv', 'no data rows'] },
  { name: 'predict: NaN input', args: ['predict', '--model', '{model}', '--data', '{f:nan.csv}', '--out', '{out}/p.csv'], code: 1, says: ['nan.csv', 'row 2', 'column b'] },
  // Model files
  { name: 'model file missing', args: ['predict', '--model', '{f:none.moe}', '--data', CLASSES, '--out', '{out}/p.csv'], code: 1, says: ['none.moe', 'not found'] },
  { name: 'model file truncated', args: ['eval', '--model', '{f:truncated.moe}', '--data', CLASSES], code: 1, says: ['truncated.moe', 'truncated'] },
  { name: 'model file empty', args: ['inspect', '{f:empty.moe}'], code: 1, says: ['empty.moe', 'not a model file'] },
  { name: 'model file corrupt', args: ['eval', '--model', '{f:corrupt.moe}', '--data', CLASSES], code: 1, says: ['corrupt.moe', 'checksum'] },
  { name: 'model arrays of the wrong size', args: ['inspect', '{f:short.moe}'], code: 1, says: ['short.moe', 'expertParams'] },
  { name: 'model file from a newer version', args: ['predict', '--model', '{f:v99.moe}', '--data', CLASSES], code: 1, says: ['v99.moe', 'version 99'] },
  { name: 'not a model (JSON)', args: ['inspect', '{f:not-a-model.json}'], code: 1, says: ['not-a-model.json', 'not a local-experts model'] },
  { name: 'not a model (CSV)', args: ['eval', '--model', CLASSES, '--data', CLASSES], code: 1, says: ['classes.csv', 'not a model file'] },
  { name: 'resume from a corrupt model', args: ['train', '--data', CLASSES, '--resume', '{f:corrupt.moe}', '--save', '{out}/m.moe'], code: 1, says: ['corrupt.moe', 'checksum'] },
  { name: 'resume on data without the model\'s target', args: ['train', '--data', REGRESSION, '--resume', '{model}', '--epochs', '5', '--save', '{out}/m.moe'], code: 1, says: ['regression.csv', 'label', 'does not fit the model'] },
  // Options
  { name: 'negative epochs', args: train(CLASSES, '--epochs', '-1'), code: 2, says: ['--epochs', "'-1'"] },
  { name: 'zero epochs for a new model', args: train(CLASSES, '--epochs', '0'), code: 2, says: ['--epochs', 'at least 1'] },
  { name: 'batch size 0', args: train(CLASSES, '--batch-size', '0'), code: 2, says: ['--batch-size', "'0'"] },
  { name: 'fractional batch size', args: train(CLASSES, '--batch-size', '2.5'), code: 2, says: ['--batch-size', "'2.5'"] },
  { name: 'workers > experts', args: train(CLASSES, '--experts', '2', '--workers', '3'), code: 2, says: ['--workers', '3 workers for 2 experts'] },
  { name: 'workers not a number', args: train(CLASSES, '--workers', 'many'), code: 2, says: ['--workers', "'many'"] },
  { name: 'unknown optimizer', args: train(CLASSES, '--optimizer', 'rmsprop'), code: 2, says: ['--optimizer', 'rmsprop', 'adam'] },
  { name: 'unknown loss', args: train(CLASSES, '--loss', 'hinge'), code: 2, says: ['--loss', 'hinge', 'nll'] },
  { name: 'loss that does not fit the task', args: ['train', '--data', REGRESSION, '--target', 'y', '--task', 'regression', '--loss', 'categorical', '--epochs', '2'], code: 2, says: ['--loss', 'categorical'] },
  { name: '--data with --dataset', args: [...train(CLASSES), '--dataset', 'vowels'], code: 2, says: ['--data', '--dataset'] },
  { name: 'no data at all', args: ['train', '--epochs', '2'], code: 2, says: ['--data', '--dataset vowels'] },
  { name: 'unknown dataset', args: ['train', '--dataset', 'digits'], code: 2, says: ['--dataset', 'digits', 'vowels'] },
  { name: '--target with --dataset vowels', args: ['train', '--dataset', 'vowels', '--target', 'x'], code: 2, says: ['--target', 'vowels'] },
  { name: 'regression task on vowels', args: ['train', '--dataset', 'vowels', '--task', 'regression'], code: 2, says: ['--task', 'classification'] },
  { name: 'missing --task', args: ['train', '--data', CLASSES, '--target', 'label'], code: 2, says: ['--task'] },
  { name: 'missing --target', args: ['train', '--data', CLASSES, '--task', 'classification'], code: 2, says: ['--target'] },
  { name: 'unknown task', args: ['train', '--data', CLASSES, '--target', 'label', '--task', 'ranking'], code: 2, says: ['--task', 'ranking'] },
  { name: 'bad expert spec', args: train(CLASSES, '--expert', 'mlp:0'), code: 2, says: ['--expert', 'mlp:0'] },
  { name: 'bad gate spec', args: train(CLASSES, '--gate', 'cnn'), code: 2, says: ['--gate', 'cnn'] },
  { name: 'zero experts', args: train(CLASSES, '--experts', '0'), code: 2, says: ['--experts', "'0'"] },
  { name: 'learning rate 0', args: train(CLASSES, '--lr', '0'), code: 2, says: ['--lr', "'0'"] },
  { name: '--val-split 1', args: train(CLASSES, '--val-split', '1'), code: 2, says: ['--val-split', "'1'"] },
  { name: '--val-split leaving no validation rows', args: train(CLASSES, '--val-split', '0.001'), code: 2, says: ['--val-split', 'no validation rows'] },
  { name: 'unknown backend', args: train(CLASSES, '--backend', 'cuda'), code: 2, says: ['--backend', 'cuda'] },
  { name: 'unknown option', args: train(CLASSES, '--epoch', '3'), code: 2, says: ["'--epoch'", '--epochs'] },
  { name: 'unknown command', args: ['fit'], code: 2, says: ["'fit'"] },
  { name: '--checkpoint-every without --save', args: train(CLASSES, '--checkpoint-every', '1'), code: 2, says: ['--checkpoint-every', '--save'] },
  { name: '--save into a missing directory', args: train(CLASSES, '--save', '{out}/no/such/dir/m.moe'), code: 2, says: ['--save', 'does not exist'] },
  { name: '--plot over the input file', args: train('{f:text.csv}', '--save', '{out}/m.moe', '--plot', '{f:text.csv}'), code: 2, says: ['--plot', 'text.csv'] },
  { name: '--plot over the resumed model', args: ['train', '--data', CLASSES, '--resume', '{model}', '--epochs', '5', '--save', '{out}/m.moe', '--plot', '{model}'], code: 2, says: ['--plot', 'good.moe'] },
  { name: 'resume with a conflicting architecture', args: ['train', '--data', CLASSES, '--resume', '{model}', '--experts', '5', '--epochs', '5', '--save', '{out}/m.moe'], code: 2, says: ['--experts', '5', '3 experts'] },
  { name: 'resume with a conflicting optimizer', args: ['train', '--data', CLASSES, '--resume', '{model}', '--optimizer', 'sgd', '--epochs', '5', '--save', '{out}/m.moe'], code: 2, says: ['--optimizer', 'sgd', 'adam'] },
  { name: 'resume to fewer epochs than done', args: ['train', '--data', CLASSES, '--resume', '{model}', '--epochs', '1', '--save', '{out}/m.moe'], code: 2, says: ['--epochs', '1', '3 epochs'] },
  { name: 'eval without --model', args: ['eval', '--data', CLASSES], code: 2, says: ['--model'] },
  { name: 'eval without data', args: ['eval', '--model', '{model}'], code: 2, says: ['--data'] },
  { name: 'predict over its own input', args: ['predict', '--model', '{model}', '--data', '{f:unseen.csv}', '--out', '{f:unseen.csv}'], code: 2, says: ['--out', 'unseen.csv'] },
  // Files that never end, huge values in messages
  ...(existsSync('/dev/zero') ? [{ name: 'data that never ends (/dev/zero)', args: train('/dev/zero'), code: 1, says: ['/dev/zero', 'NUL byte', 'not a text CSV file'] }] : []),
  { name: 'a 1 MB header name is cut in the message', args: ['train', '--data', '{f:huge-name.csv}', '--target', 'nope', '--task', 'classification'], code: 2, says: ['--target', '"nope"', '(1000000 chars)'] },
  // Seeds: all the generator takes, nothing that wraps
  { name: '--seed beyond 32 bits', args: train(CLASSES, '--seed', '4294967296'), code: 2, says: ['--seed', "'4294967296'", '4294967295'] },
  { name: 'negative --seed', args: train(CLASSES, '--seed', '-1'), code: 2, says: ['--seed', "'-1'"] },
  { name: 'reproduce --seed beyond 32 bits', args: ['reproduce', 'jacobs1991', '--seed', '4294967296', '--out', '{out}/r'], code: 2, says: ['--seed', '4294967295'] },
  // Output paths, checked before any work
  { name: '--save under a file', args: train(CLASSES, '--save', '{f:empty.csv}/m.moe'), code: 2, says: ['--save', 'empty.csv', 'not a directory'] },
  { name: '--save a symbolic link to a directory', args: train(CLASSES, '--save', '{f:link-to-dir}'), code: 2, says: ['--save', 'link-to-dir', 'symbolic link to a directory'] },
  { name: '--plot a directory', args: train(CLASSES, '--plot', '{f:adir}'), code: 2, says: ['--plot', 'adir', 'is a directory'] },
  ...(canMkfifo ? [{ name: '--plot a FIFO', args: train(CLASSES, '--save', '{out}/m.moe', '--plot', '{f:fifo}'), code: 2, says: ['--plot', 'fifo', 'named pipe'] }] : []),
  ...(canMknod ? [{ name: '--save a character device', args: train(CLASSES, '--save', '{f:chardev}'), code: 2, says: ['--save', 'chardev', 'character device'] }] : []),
  ...(canLock
    ? [
        { name: '--save into a directory that cannot be written', args: train(CLASSES, '--save', '{f:locked}/m.moe'), code: 2, says: ['--save', 'locked', 'not writable'] },
        { name: '--plot into a directory that cannot be written', args: train(CLASSES, '--save', '{out}/m.moe', '--plot', '{f:locked}/p.svg'), code: 2, says: ['--plot', 'locked', 'not writable'] },
        { name: 'predict --out into a directory that cannot be written', args: ['predict', '--model', '{model}', '--data', CLASSES, '--out', '{f:locked}/p.csv'], code: 2, says: ['--out', 'locked', 'not writable'] },
      ]
    : []),
  { name: 'predict --out a symbolic link to a directory', args: ['predict', '--model', '{model}', '--data', CLASSES, '--out', '{f:link-to-dir}'], code: 2, says: ['--out', 'symbolic link to a directory'] },
  { name: 'predict --out over its model through a symbolic link', args: ['predict', '--model', '{model}', '--data', CLASSES, '--out', '{f:model-link}'], code: 2, says: ['--out', 'would overwrite --model'] },
  { name: 'bench --out under a file', args: ['bench', 'scaling', '--sizes', 'small', '--out', '{f:empty.csv}/reports'], code: 2, says: ['--out', 'empty.csv', 'not a directory'] },
  { name: 'reproduce --out is a file', args: ['reproduce', 'jacobs1991', '--runs', '1', '--out', '{f:empty.csv}'], code: 2, says: ['--out', 'empty.csv', 'not a directory'] },
  { name: 'predict --out an empty name', args: ['predict', '--model', '{model}', '--data', CLASSES, '--out', ''], code: 2, says: ['--out', 'needs a file name', '""'] },
  { name: 'export --out an empty name', args: ['export', '--model', '{model}', '--format', 'onnx', '--out', ''], code: 2, says: ['--out', 'needs a file name'] },
  // Flags that would be ignored
  { name: '--stall-timeout with --workers 0', args: train(CLASSES, '--workers', '0', '--stall-timeout', '5'), code: 2, says: ['--stall-timeout', '--workers 0'] },
  { name: '--no-split with --workers 0', args: train(CLASSES, '--workers', '0', '--no-split'), code: 2, says: ['--no-split', '--workers 0'] },
  { name: '--block-rows with dense routing', args: train(CLASSES, '--block-rows', '8'), code: 2, says: ['--block-rows', 'dense'] },
  // A directory where a model file belongs
  { name: 'inspect a directory', args: ['inspect', '{f:adir}'], code: 1, says: ['adir', 'is a directory, not a model file'] },
  { name: '--data a directory', args: train('{f:adir}'), code: 1, says: ['adir', 'is a directory, not a CSV file'] },
  { name: 'eval --model a directory', args: ['eval', '--model', '{f:adir}', '--data', CLASSES], code: 1, says: ['adir', 'is a directory'] },
];

/** Output files a case might write: its own directory must stay empty (bar what the case made). */
function expand(args: string[], out: string): string[] {
  return args.map((a) =>
    a
      .replace(/\{f:([^}]+)\}/g, (_m, name: string) => join(dir, name))
      .replace('{model}', model)
      .replace('{out}', out),
  );
}

/** Run one case (in output dir `out`) and check the contract. */
async function checkCase(c: Case, out: string, env?: Record<string, string>): Promise<void> {
  await mkdir(out);
  // Train cases also ask for a model and a plot: neither may appear.
  const extra = c.args[0] === 'train' && !c.args.includes('--save') && !c.args.includes('--plot') && !c.args.includes('--checkpoint-every') ? ['--save', join(out, 'm.moe'), '--plot', join(out, 'p.svg')] : [];
  const r = await moe([...expand(c.args, out), ...extra], undefined, env);
  expect(r.code, r.stderr).toBe(c.code);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  const line = lines[0]!;
  expect(line.startsWith('moe: error: ')).toBe(true);
  expect(line).not.toMatch(/\bat .*:\d+:\d+/);
  // Values are cut: no message runs to megabytes.
  expect(line.length).toBeLessThan(1000);
  for (const s of c.says) expect(line).toContain(s);
  // Nothing written: the case's own folder holds only what the case made.
  expect(readdirSync(out)).toEqual([]);
}

describe.concurrent('bad input: one line on stderr, the documented exit code, nothing written', () => {
  it.each(CASES.map((c, i) => [c.name, c, i] as const))('%s', async (_name, c, i) => {
    await checkCase(c, join(dir, `out${i}`));
  });
});

/**
 * The same on a machine where OpenBLAS does not load (hidden from the subprocess): input
 * is checked before a compute provider loads, so its fall-back notice never comes before
 * the error line. Every case that reads a model file or data (the ones that loaded a
 * provider first) is run.
 */
const HIDDEN = hiddenBlasEnv(join(tmpdir(), `moe-bad-noblas-${process.pid}`));
const LOADS_A_MODEL = CASES.filter((c) => c.args.some((a) => a.includes('{model}') || a.includes('.moe}')) || ['eval', 'predict', 'inspect'].includes(c.args[0]!));
describe.skipIf(HIDDEN === undefined)('bad input where OpenBLAS does not load: still exactly one line', { concurrent: true }, () => {
  it.each(LOADS_A_MODEL.map((c, i) => [c.name, c, i] as const))('%s', async (_name, c, i) => {
    await checkCase(c, join(dir, `noblas${i}`), HIDDEN);
  });
});

describe('a compute backend that cannot load', () => {
  const require = createRequire(import.meta.url);
  let tfjsNode = true;
  try {
    require.resolve('@tensorflow/tfjs-node');
  } catch {
    tfjsNode = false;
  }
  // MOE_REQUIRE_BACKEND turns the fall-back to the next provider into an error (exit 3).
  it.skipIf(tfjsNode)('exits 3 naming the backend', async () => {
    const r = await moe(['train', '--dataset', 'vowels', '--epochs', '1', '--backend', 'tensorflow'], undefined, { MOE_REQUIRE_BACKEND: 'tensorflow' });
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('backend tensorflow');
  });
});

describe('bad input with --verbose', () => {
  it('adds the stack trace, same exit code', async () => {
    const r = await moe(['eval', '--model', join(dir, 'corrupt.moe'), '--data', CLASSES, '--verbose']);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toContain('checksum');
    expect(lines.length).toBeGreaterThan(2);
    expect(r.stderr).toMatch(/\n\s+at .*model-file/);
  });

  it('the input files the bad cases refer to are unchanged, and so are the outputs they refused', async () => {
    for (const [name, text] of Object.entries(FILES)) expect(await readFile(join(dir, name), 'utf8')).toBe(text);
    expect(lstatSync(join(dir, 'link-to-dir')).isSymbolicLink()).toBe(true);
    expect(readdirSync(join(dir, 'adir'))).toEqual([]);
    expect(lstatSync(join(dir, 'model-link')).isSymbolicLink()).toBe(true);
    if (canMkfifo) expect(lstatSync(join(dir, 'fifo')).isFIFO()).toBe(true);
    if (canMknod) expect(lstatSync(join(dir, 'chardev')).isCharacterDevice()).toBe(true);
    if (canLock) expect(readdirSync(join(dir, 'locked'))).toEqual([]);
  });
});
