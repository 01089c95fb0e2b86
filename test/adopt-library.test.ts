/**
 * Library sides of issue 17: loadCsv takes a single target name as a string (and refuses
 * anything else with an OptionError), a classification target of non-integer numbers is
 * an OptionError, the validation split and early stopping's counters live in the model's
 * training state and survive save/load, so that a resumed fit stops where an
 * uninterrupted one does; --plot's format by extension; --lr-schedule's rules.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clock, rate, timing } from '../src/cli/progress.js';
import { lrScheduleArg } from '../src/cli/train.js';
import { loadCsv } from '../src/data/csv.js';
import { datasetFromArrays } from '../src/data/dataset.js';
import { OptionError } from '../src/errors.js';
import { Mixture } from '../src/mixture.js';
import { plotFormat } from '../src/plot/output.js';

let dir: string;
let csv: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moe-adopt-lib-'));
  csv = join(dir, 'd.csv');
  await writeFile(csv, 'a,b,y\n1,2,0.5\n2,3,1.5\n3,1,2.25\n4,4,0.75\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadCsv options', () => {
  it("takes { target: 'y' } as one target column", async () => {
    const d = await loadCsv(csv, { target: 'y', task: 'regression' });
    expect(d.targetNames).toEqual(['y']);
    expect(d.featureNames).toEqual(['a', 'b']);
    expect(Array.from(d.y!)).toEqual([0.5, 1.5, 2.25, 0.75]);
  });

  it('refuses a target that is neither a name nor names with an OptionError', async () => {
    const bad = loadCsv(csv, { target: 42 as unknown as string, task: 'regression' });
    await expect(bad).rejects.toBeInstanceOf(OptionError);
    await expect(bad).rejects.toThrow(/^target: must be a column name or an array of column names/);
  });

  it('refuses non-integer numbers as classes, naming regression', async () => {
    const err = await loadCsv(csv, { target: 'y', task: 'classification' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OptionError);
    expect((err as OptionError).option).toBe('task');
    expect((err as Error).message).toMatch(/non-integer numbers .*regression/);
  });

  it('reads another delimiter', async () => {
    const semi = join(dir, 's.csv');
    await writeFile(semi, 'a;y\n1;2\n3;4\n');
    const d = await loadCsv(semi, { target: 'y', task: 'regression', delimiter: ';' });
    expect(Array.from(d.x)).toEqual([1, 3]);
    await expect(loadCsv(semi, { target: 'y', task: 'regression', delimiter: '"' })).rejects.toBeInstanceOf(OptionError);
  });
});

describe('training state', () => {
  const xs = Array.from({ length: 40 }, (_, i) => [i / 40, (i % 7) / 7]);
  const data = datasetFromArrays('regression', xs, xs.map(([a, b]) => [a! * 2 - b!]));
  const create = () => Mixture.create({ task: 'regression', inputs: 2, outputs: 1, experts: 2, seed: 3 });
  // minDelta so large that no epoch after the first counts as improvement: stops after 1 + patience epochs.
  const earlyStopping = { patience: 4, minDelta: 1e9 };

  it('a resumed fit continues early stopping and stops at the same epoch as an uninterrupted one', async () => {
    const whole = await create();
    const a = await whole.fit(data, { epochs: 20, batchSize: 8, validationSplit: 0.25, earlyStopping });
    expect(a.stopReason).toBe('early-stopping');
    expect(whole.training.epoch).toBe(5);
    const part = await create();
    await part.fit(data, { epochs: 3, batchSize: 8, validationSplit: 0.25, earlyStopping });
    const path = join(dir, 'es.moe');
    await part.save(path);
    await part.close();
    const resumed = await Mixture.load(path);
    expect(resumed.training.earlyStopping).toEqual({ best: expect.any(Number), bestEpoch: 1, sinceBest: 2 });
    expect(resumed.training.validationSplit).toBe(0.25);
    const b = await resumed.fit(data, { epochs: 20, batchSize: 8, validationSplit: 0.25, earlyStopping });
    expect(b.stopReason).toBe('early-stopping');
    expect(resumed.training.epoch).toBe(5);
    // Without the counters in the file it would run 5 more epochs (to epoch 8).
    expect(b.epochs).toBe(2);
    await whole.close();
    await resumed.close();
  });

  it('the new fields survive the safetensors file too', async () => {
    const m = await create();
    await m.fit(data, { epochs: 2, batchSize: 8, validationSplit: 0.5, earlyStopping: { patience: 5 } });
    const path = join(dir, 'es.safetensors');
    await m.save(path);
    const back = await Mixture.load(path);
    expect(back.training.validationSplit).toBe(0.5);
    expect(back.training.earlyStopping).toEqual(m.training.earlyStopping);
    await m.close();
    await back.close();
  });
});

describe('CLI parsers', () => {
  it('plotFormat goes by the extension', () => {
    expect(plotFormat('a/curves.PNG', '--plot')).toBe('png');
    expect(plotFormat('curves.svg', '--plot')).toBe('svg');
    expect(() => plotFormat('curves.jpg', '--plot')).toThrow(/--plot: curves\.jpg: .*not \.jpg/);
    expect(() => plotFormat('curves', '--plot')).toThrow(OptionError);
  });

  it('--lr-schedule rules', () => {
    expect(lrScheduleArg('step:30:0.5')).toEqual({ kind: 'step', every: 30, factor: 0.5 });
    expect(lrScheduleArg('cosine')).toEqual({ kind: 'cosine', floor: 0 });
    expect(lrScheduleArg('cosine:0.01')).toEqual({ kind: 'cosine', floor: 0.01 });
    for (const bad of ['step:0:0.5', 'step:3:2', 'cosine:1', 'exp', 'step:3']) expect(() => lrScheduleArg(bad)).toThrow();
  });
});

describe('progress line pieces', () => {
  it('elapsed time, ETA and a short pace that leave the metrics room in 80 columns', () => {
    expect(clock(0)).toBe('0:00');
    expect(clock(63.4)).toBe('1:03');
    expect(clock(3723)).toBe('1:02:03');
    expect(timing(10, 2, 8)).toBe('0:10 (eta 0:40)');
    expect(timing(0, 0, 8)).toBe('0:00 (eta -:--)');
    expect(rate(499_639)).toBe('499.6k samples/s');
    expect(rate(1_234_567)).toBe('1.2M samples/s');
    expect(rate(850)).toBe('850 samples/s');
    // epoch, a 12-cell bar, the time and the pace: what comes before the metrics.
    const head = `epoch 1000/1000 ${'#'.repeat(12)} ${timing(3599, 999, 1)}  ${rate(1e6 - 1)}  `;
    expect(head.length).toBeLessThanOrEqual(80 - 'loss 0.4941'.length);
  });
});

describe('scripts/readme-commands.mjs', () => {
  it("reads a section's sh commands: continuation lines joined, comments dropped, other blocks ignored", async () => {
    // @ts-expect-error plain .mjs script without declarations
    const { sectionCommands } = (await import('../scripts/readme-commands.mjs')) as { sectionCommands: (md: string, s: string) => string[] };
    const md = ['# T', '## A', '```sh', 'npx moe train --x 1 \\', '    --y 2   # a comment', '', 'npx moe eval  # more', '```', '```ts', 'not.a(command)', '```', '## B', '```sh', 'npx moe b', '```'].join('\n');
    expect(sectionCommands(md, 'A')).toEqual(['npx moe train --x 1 --y 2', 'npx moe eval']);
    expect(() => sectionCommands(md, 'C')).toThrow(/no section/);
  });

  it("finds the README's quick start and Command line commands", async () => {
    // @ts-expect-error plain .mjs script without declarations
    const { sectionCommands } = (await import('../scripts/readme-commands.mjs')) as { sectionCommands: (md: string, s: string) => string[] };
    const { readFile } = await import('node:fs/promises');
    const md = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    expect(sectionCommands(md, 'Quick start')[0]).toBe('npm ci && npm start');
    const cli = sectionCommands(md, 'Command line');
    expect(cli.length).toBeGreaterThan(10);
    for (const c of cli) expect(c).toMatch(/^npx moe /);
    // The resume example keeps its work.
    expect(cli.find((c) => c.includes('--resume'))).toMatch(/--save /);
  });
});
