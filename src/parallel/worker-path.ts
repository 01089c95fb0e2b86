import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Absolute path of a built worker entry file (`dist/workers/<name>.js`), found from this
 * module's own location, never the current directory: it works from dist/ when installed
 * as a package and from src/ under vitest (Node 20 cannot start a worker from .ts, so
 * workers always start from the build).
 */
export function workerFile(name: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'dist', 'workers', `${name}.js`);
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error(`worker file dist/workers/${name}.js not found above ${fileURLToPath(import.meta.url)}: run npm run build`);
    dir = up;
  }
}
