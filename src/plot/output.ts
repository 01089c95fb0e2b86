/**
 * Writing a plot where the user asked: SVG or PNG by the file's extension (PNG through
 * resvg), any other extension refused before any work starts.
 */
import { extname } from 'node:path';
import { OptionError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { renderPng } from '../reproduce/plots.js';

/** The image formats a plot can be written in. */
export type PlotFormat = 'svg' | 'png';

/** The format a plot path asks for by its extension (.svg or .png, any case), or an OptionError naming `option`. */
export function plotFormat(path: string, option: string): PlotFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.svg') return 'svg';
  if (ext === '.png') return 'png';
  throw new OptionError(option, `${path}: the extension picks the format: give a file ending in .svg or .png${ext ? `, not ${ext}` : ''}`);
}

/** Write an SVG document to `path` as SVG or PNG (by its extension), atomically. */
export async function writePlot(path: string, svg: string, option: string): Promise<void> {
  if (plotFormat(path, option) === 'svg') {
    await writeFileAtomic(path, svg, { option });
    return;
  }
  const png = await renderPng(svg);
  if ('error' in png) throw new OptionError(option, `cannot render PNG (${png.error}); give a .svg file instead`);
  await writeFileAtomic(path, png.png, { option });
}
