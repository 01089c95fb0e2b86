#!/usr/bin/env node
// require() of an ES module (Node ≥ 20.19) throws ERR_REQUIRE_ASYNC_MODULE when anything
// in its static import graph awaits at top level, so CommonJS users depend on there being
// none in the package. A grep cannot tell `await` in a function from one at module scope;
// TypeScript's parser can.
//
//   node scripts/check-no-tla.mjs <dir or .js file>...   (exit 1 and a list when found)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

/** Top-level `await`, `for await` and `await using` in one JS module: `line: text` per hit (1-based lines). */
export function topLevelAwaits(file) {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const hits = [];
  const report = (node) => {
    const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
    hits.push(`${line + 1}: ${node.getText(sf).split('\n')[0].slice(0, 100)}`);
  };
  const visit = (node) => {
    // Anything inside a function (or a class body, where await is not allowed) runs later.
    if (ts.isFunctionLike(node) || ts.isClassStaticBlockDeclaration(node)) return;
    if (ts.isAwaitExpression(node)) report(node);
    else if (ts.isForOfStatement(node) && node.awaitModifier) report(node);
    else if (ts.isVariableDeclarationList(node) && (node.flags & ts.NodeFlags.AwaitUsing) === ts.NodeFlags.AwaitUsing) report(node);
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return hits;
}

/** Every .js/.mjs/.cjs file under `path` (or `path` itself). */
export function jsFiles(path) {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && /\.[cm]?js$/.test(d.name) && !d.parentPath.split(/[\\/]/).includes('node_modules'))
    .map((d) => join(d.parentPath, d.name))
    .sort();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const roots = process.argv.slice(2);
  if (roots.length === 0) {
    console.error('usage: node scripts/check-no-tla.mjs <dir or file>...');
    process.exit(2);
  }
  let files = 0;
  let bad = 0;
  for (const root of roots) {
    for (const file of jsFiles(root)) {
      files++;
      const hits = topLevelAwaits(file);
      if (hits.length === 0) continue;
      bad++;
      const name = file === root ? file : join(root, relative(root, file));
      for (const h of hits) console.error(`top-level await: ${name}:${h}`);
    }
  }
  if (files === 0) {
    console.error(`no JavaScript files under ${roots.join(' ')}`);
    process.exit(1);
  }
  console.log(`top-level await: ${bad === 0 ? 'none' : `${bad} file(s)`} in ${files} JS files`);
  process.exit(bad === 0 ? 0 : 1);
}
