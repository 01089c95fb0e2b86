#!/usr/bin/env bash
# Pack the package as `npm publish` would, check what the tarball holds, install it into
# a new project outside the repository and use it from there the way a user would: the
# `moe` CLI (help, training with worker threads, the benchmark), TypeScript type-checking
# under moduleResolution node16 and bundler, require() from CommonJS, and an example.
# Then the README as a user meets it: a fresh clone of HEAD runs the README's quick start
# (`npm ci && npm start`; the suite itself is CI's own step) and every command of its
# "Command line" section, and a git install of that clone (`npm install git+file://…`)
# into an empty project imports the package and runs the same commands
# (scripts/readme-commands.mjs reads them from the README). Commit first: a clone holds
# HEAD, not the working tree. SKIP_GIT_INSTALL=1 leaves those two steps out.
#
#   scripts/pack-check.sh [NODE_BINARY...]
#
# The CommonJS consumer and the example run with every NODE_BINARY given (default: the
# `node` on PATH), e.g. `scripts/pack-check.sh node "$(scripts/node-bin.sh 24)"`.
# Needs `npm ci` and `npm run build` done. KEEP_PACK_CHECK=1 keeps the temporary
# directory; it is kept anyway when a step fails. STEP_TIMEOUT (s, default 300) bounds
# every command that runs the package, so one that leaves a thread running fails
# instead of hanging; INSTALL_TIMEOUT (s, default 1200) bounds npm ci and the git install.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
nodes=("$@")
(( ${#nodes[@]} )) || nodes=(node)
limit="${STEP_TIMEOUT:-300}"
# npm ci / a git install (which builds) take minutes on a busy 2-core machine.
install_limit="${INSTALL_TIMEOUT:-1200}"

die() { echo "pack-check: $*" >&2; exit 1; }
[[ -f dist/src/index.js && -f dist/workers/shard.js ]] || die "no build in dist/: run npm run build first"

work="$(mktemp -d "${TMPDIR:-/tmp}/local-experts-pack.XXXXXX")"
work="$(cd "$work" && pwd -P)"
case "$work/" in "$(pwd -P)/"*) die "temporary directory $work is inside the repository" ;; esac
finish() {
  local rc=$?
  if (( rc == 0 )) && [[ -z "${KEEP_PACK_CHECK:-}" ]]; then rm -rf "$work"; else echo "pack-check: files left in $work" >&2; fi
}
trap finish EXIT

step_start=$SECONDS
step() { echo; echo "--- pack-check: $*"; step_start=$SECONDS; }
done_step() { echo "--- pack-check: ok ($((SECONDS - step_start)) s)"; }
bounded() { timeout -k 10 "$limit" "$@"; }

step "npm pack"
tgz_name="$(npm pack --ignore-scripts --pack-destination "$work" --json --loglevel=error | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s)[0].filename));')"
tgz="$work/$tgz_name"
[[ -f "$tgz" ]] || die "npm pack did not write $tgz"
echo "$tgz ($(du -k "$tgz" | cut -f1) KiB, $(tar -tzf "$tgz" | wc -l) files)"
done_step

step "tarball contents"
mapfile -t files < <(tar -tzf "$tgz" | sed 's#^package/##' | sort)
required=(package.json README.md LICENSE bin/moe.js data/peterson-barney-1952.csv data/README.md dist/kernels/kernels.wasm python/torch_peer.py
  dist/src/index.js dist/src/index.d.ts dist/src/cli/main.js dist/workers/shard.js dist/workers/reproduce-run.js)
for f in "${required[@]}"; do
  # grep reads the whole list (no -q): with -q it may exit at the first match while printf is
  # still writing, and printf's SIGPIPE then fails the pipeline under pipefail.
  printf '%s\n' "${files[@]}" | grep -xF "$f" >/dev/null || die "the tarball lacks $f"
done
extra="$(printf '%s\n' "${files[@]}" | grep -vxE 'package\.json|README\.md|LICENSE|bin/moe\.js|data/peterson-barney-1952\.csv|data/README\.md|dist/kernels/kernels\.wasm|python/torch_peer\.py|dist/(src|workers|bench)/.+\.(js|d\.ts)' || true)"
[[ -z "$extra" ]] || die "the tarball carries files no user needs:"$'\n'"$extra"
mkdir "$work/unpacked"
tar -xzf "$tgz" -C "$work/unpacked"
head -n1 "$work/unpacked/package/bin/moe.js" | grep -qx '#!/usr/bin/env node' || die "bin/moe.js has no '#!/usr/bin/env node' line"
[[ -x "$work/unpacked/package/bin/moe.js" ]] || die "bin/moe.js is packed without its run bit"
! grep -rlE '^//# sourceMappingURL=' "$work/unpacked/package/dist" || die "compiled files point at source maps that are not shipped"
node scripts/check-no-tla.mjs "$work/unpacked/package"
done_step

step "exports map and types (attw, esm-only profile)"
npx --no-install attw "$tgz" --profile esm-only --format table-flipped
done_step

step "install the tarball into $work/consumer"
mkdir "$work/consumer"
cd "$work/consumer"
# onnxruntime-node's install script downloads GPU extras from outside the registry: a
# consumer turns it off as this repository does (its CPU binaries are in the package).
cat >package.json <<'JSON'
{ "name": "consumer", "version": "1.0.0", "private": true, "type": "module", "allowScripts": { "onnxruntime-node": false } }
JSON
ts_version="$(node -p "require('$repo/node_modules/typescript/package.json').version")"
types_version="$(node -p "require('$repo/node_modules/@types/node/package.json').version")"
ort_version="$(node -p "require('$repo/node_modules/onnxruntime-node/package.json').version")"
# No --omit=optional: koffi's native binary is an optional per-platform dependency.
npm install --no-audit --no-fund --prefer-offline "$tgz" "typescript@$ts_version" "@types/node@$types_version" "onnxruntime-node@$ort_version"
[[ -f node_modules/local-experts/dist/workers/shard.js ]] || die "installed package has no worker file"
[[ -x node_modules/.bin/moe ]] || die "npm did not link the moe command"
done_step

step "CLI from the installed package"
bounded npx --no-install moe --help
[[ "$(bounded npx --no-install moe --version)" == "$(node -p "require('$repo/package.json').version")" ]] || die "moe --version is not the package's version"
bounded npx --no-install moe train --dataset vowels --workers 2
bounded npx --no-install moe bench scaling --quick --sizes small --workers 1,2 --experts 4 --out "$work/consumer/bench-results"
bounded npx --no-install moe reproduce jacobs1991 --runs 1 --epochs 5 --jobs 2 --out "$work/consumer/results"
for f in bench-results/*.json bench-results/*.md results/jacobs1991.json results/jacobs1991.md results/jacobs1991.svg; do
  compgen -G "$f" >/dev/null || die "the CLI did not write $f"
done
ls bench-results results
done_step

step "TypeScript consumer (ESM), moduleResolution node16 and bundler"
mkdir src
cat >src/main.ts <<'TS'
import {
  Mixture,
  MoeError,
  OptionError,
  datasetFromArrays,
  loadVowels,
  type CreateOptions,
  type Dataset,
  type EpochInfo,
  type Evaluation,
  type FitResult,
  type Prediction,
} from 'local-experts';

const options: CreateOptions = { task: 'regression', inputs: 1, outputs: 1, experts: 2, expert: 'mlp:8', loss: 'gaussian', seed: 1 };

export async function main(): Promise<number> {
  const data: Dataset = datasetFromArrays('regression', [[0], [1], [2], [3]], [[0], [1], [4], [9]]);
  const m = await Mixture.create(options);
  try {
    const fit: FitResult = await m.fit(data, { epochs: 2, workers: 'auto', onEpoch: (e: EpochInfo) => e.loss < 10 });
    const p: Prediction = m.predict([[1.5]]);
    const ev: Evaluation = m.evaluate(data);
    const first: number | undefined = p.output[0];
    return fit.epochs + ev.gateShare.length + (first ?? 0);
  } catch (err) {
    if (err instanceof OptionError || err instanceof MoeError) console.error(err.code, err.message);
    throw err;
  } finally {
    await m.close();
  }
}

export async function vowels(): Promise<number> {
  const { train } = await loadVowels({ seed: 2 });
  // The types are real, not `any`: a loss that does not exist must not compile.
  // @ts-expect-error 'sigmoid' is not a loss
  await Mixture.create({ task: 'classification', inputs: train.inputs, outputs: train.outputs, experts: 2, loss: 'sigmoid' });
  return train.n;
}
TS
cat >tsconfig.node16.json <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022", "module": "Node16", "moduleResolution": "Node16",
    "strict": true, "noEmit": true, "skipLibCheck": false, "types": ["node"]
  },
  "include": ["src"]
}
JSON
cat >tsconfig.bundler.json <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022", "module": "ESNext", "moduleResolution": "Bundler",
    "strict": true, "noEmit": true, "skipLibCheck": false, "types": ["node"]
  },
  "include": ["src"]
}
JSON
npx --no-install tsc -p tsconfig.node16.json
echo "tsc node16: ok"
npx --no-install tsc -p tsconfig.bundler.json
echo "tsc bundler: ok"
done_step

cat >consumer.cjs <<'JS'
// A CommonJS program: require() of the ES-module package (Node >= 20.19), training with
// two worker threads; it must exit by itself once the mixture is closed.
const { Mixture, loadVowels } = require('local-experts');
(async () => {
  const { train, test } = await loadVowels({ seed: 1 });
  const m = await Mixture.create({ task: 'classification', inputs: 2, outputs: 4, experts: 4, seed: 1 });
  try {
    const r = await m.fit(train, { epochs: 20, workers: 2 });
    if (r.workers !== 2) throw new Error(`trained on ${r.workers} workers, expected 2`);
    console.log(`require(): ${r.epochs} epochs on ${r.workers} workers (${r.backend}), test accuracy ${(100 * m.evaluate(test).accuracy).toFixed(1)}%`);
  } finally {
    await m.close();
  }
})().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
JS
cp "$repo/examples/vowels-workers.mjs" example.mjs
cp "$repo/examples/onnx-serve.mjs" onnx-serve.mjs
for n in "${nodes[@]}"; do
  step "CommonJS consumer and examples on $("$n" --version)"
  bounded "$n" consumer.cjs
  bounded "$n" example.mjs --epochs 20
  bounded "$n" onnx-serve.mjs --epochs 20
  done_step
done

if [[ -z "${SKIP_GIT_INSTALL:-}" ]]; then
  [[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ]] || echo "pack-check: note: uncommitted changes are not in the clone (it holds HEAD)"
  step "fresh clone of HEAD: the README's quick start and Command line section"
  git clone --quiet "$repo" "$work/clone"
  git -C "$work/clone" checkout --quiet "$(git -C "$repo" rev-parse HEAD)"
  [[ "$(git -C "$work/clone" ls-files -s bin/moe.js | cut -c1-6)" == 100755 ]] || die "bin/moe.js is not tracked with its run bit"
  cd "$work/clone"
  timeout -k 10 "$install_limit" node scripts/readme-commands.mjs --readme README.md --cwd "$work/clone" --section "Quick start" --skip '^npm test$'
  # npm start rebuilt dist/: the command must still run (the launcher keeps its run bit).
  bounded npx --no-install moe --version
  bounded node scripts/readme-commands.mjs --readme README.md --cwd "$work/clone/readme-run" --section "Command line"
  done_step

  step "git install of the clone into an empty project: import, npx moe, the README's Command line section"
  mkdir "$work/git-consumer"
  cd "$work/git-consumer"
  cat >package.json <<'JSON'
{ "name": "git-consumer", "version": "1.0.0", "private": true, "type": "module" }
JSON
  # npm installs a git dependency's devDependencies and runs its prepare script (the build).
  timeout -k 10 "$install_limit" npm install --no-audit --no-fund --prefer-offline "git+file://$work/clone"
  [[ -f node_modules/local-experts/dist/src/index.js && -f node_modules/local-experts/dist/kernels/kernels.wasm ]] || die "the git install has no build in dist/"
  bounded node --input-type=module -e "
    const m = await import('local-experts');
    if (typeof m.Mixture?.create !== 'function') throw new Error('no Mixture.create');
    console.log('import(\'local-experts\'): ok,', Object.keys(m).length, 'exports');"
  [[ "$(bounded npx --no-install moe --version)" == "$(node -p "require('$repo/package.json').version")" ]] || die "npx moe --version failed in the git install"
  bounded node "$repo/scripts/readme-commands.mjs" --readme node_modules/local-experts/README.md --cwd "$work/git-consumer" --section "Command line"
  done_step
fi

echo
echo "pack-check: ok: $tgz_name installs outside the repository and works (CLI, types, require, example)"
[[ -n "${SKIP_GIT_INSTALL:-}" ]] || echo "pack-check: ok: a fresh clone runs the README's quick start and Command line section, and so does a git install into an empty project"
