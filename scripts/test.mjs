// npm test: runs the same uvu suites in Node, Deno and headless Chromium, each on the js, wasm
// and webgpu backends, then smoke-tests the built package in workerd and Bun. Ends with a
// runtime × backend table and one "N passed, N failed, N skipped" line.
// Under CI=true a runtime or backend that cannot run is a failure; otherwise it is skipped
// with the reason and the apt command that adds what it needs.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, dirname, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const r = (...p) => join(root, ...p);
const CI = process.env.CI === 'true' || process.env.CI === '1';
const BACKENDS = ['js', 'wasm', 'webgpu'];
const only = process.argv.slice(2); // e.g. `npm test -- node deno` to run some runtimes only
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const LAVAPIPE_ICDS = ['/usr/share/vulkan/icd.d/lvp_icd.x86_64.json', '/usr/share/vulkan/icd.d/lvp_icd.aarch64.json'];
const CHROMIUM = '/usr/bin/chromium';
const RUN_TIMEOUT_MS = 20 * 60 * 1000;

const hasLibVulkan = (() => { try { return /libvulkan\.so\.1/.test(execFileSync('ldconfig', ['-p'], { encoding: 'utf8' })); } catch { return false; } })();

execFileSync(process.execPath, [r('scripts', 'build.mjs'), '--if-stale'], { stdio: 'inherit' });
// The tests are type-checked against the sources before they run.
execFileSync(r('node_modules', '.bin', 'tsc'), ['-p', r('test', 'tsconfig.json')], { stdio: 'inherit' });

// Bundle the test entries against the built package (dist/), as a user would import it.
const outdir = r('build', 'test');
mkdirSync(outdir, { recursive: true });
// uvu must not auto-run: the harness calls exec() once the backend is resolved. The flag is set
// in a banner because a side-effect-only import would be dropped ("sideEffects": false).
const common = { bundle: true, format: 'esm', target: 'es2022', alias: { 'merge-kernels': r('dist', 'index.js') }, logLevel: 'warning', banner: { js: 'globalThis.UVU_DEFER = 1;' } };
await esbuild.build({ ...common, platform: 'node', entryPoints: [r('test', 'runtimes', 'node.ts')], outfile: join(outdir, 'node.js'), external: ['webgpu', 'yaml'] });
await esbuild.build({ ...common, platform: 'neutral', entryPoints: [r('test', 'runtimes', 'deno.ts')], outfile: join(outdir, 'deno.js') });
await esbuild.build({ ...common, platform: 'browser', entryPoints: [r('test', 'runtimes', 'browser.ts')], outfile: join(outdir, 'browser.js') });
// Node-only tests (files, the CLI): the package and its Node entries stay external, so the test,
// the CLI and merge-kernels/node share one dist/index.js (one MergeKernels class).
const distCli = { name: 'dist-cli', setup(b) { b.onResolve({ filter: /src[\\/]cli\.ts$/ }, () => ({ path: r('dist', 'cli.js'), external: true })); } };
await esbuild.build({ bundle: true, format: 'esm', target: 'es2022', logLevel: 'warning', platform: 'node', entryPoints: [r('test', 'node', 'cli.test.ts')], outfile: join(outdir, 'node-cli.js'), external: ['merge-kernels', 'merge-kernels/node', 'yaml', 'cli-progress', 'webgpu'], plugins: [distCli] });
writeFileSync(join(outdir, 'index.html'), '<!doctype html><meta charset="utf-8"><title>merge-kernels tests</title><script type="module" src="./browser.js"></script>\n');

const results = []; // { runtime, backend, passed, failed, skipped, note }
const skips = [];   // reasons printed by SKIP lines

/** Parses uvu's closing lines and our SKIP lines out of a run's output. */
function tally(runtime, backend, output, exitCode) {
  const text = output.replace(/\x1b\[[0-9;]*m/g, '');
  const backendFail = text.match(/FAIL-BACKEND: (.*)/);
  if (backendFail) {
    results.push({ runtime, backend, passed: 0, failed: 1, skipped: 0, note: `backend failed to start: ${backendFail[1]}` });
    return;
  }
  const backendSkip = text.match(/SKIP-BACKEND: (.*)/);
  // Only WebGPU may be unavailable; a js or wasm backend that says so is broken, in and out of CI.
  if (backendSkip && backend !== 'webgpu') {
    results.push({ runtime, backend, passed: 0, failed: 1, skipped: 0, note: `unavailable: ${backendSkip[1]}` });
    return;
  }
  if (backendSkip) return unavailable(runtime, backend, backendSkip[1]);
  const num = (label) => { const m = text.match(new RegExp(`${label}:\\s+(\\d+)`)); return m ? Number(m[1]) : undefined; };
  const total = num('Total'), passed = num('Passed'), skipped = num('Skipped') ?? 0;
  const skipLines = [...text.matchAll(/(?:^|\s)SKIP: (.*)$/gm)].map((m) => m[1]);
  for (const s of skipLines) skips.push(`${runtime}/${backend}: ${s}`);
  if (total === undefined || passed === undefined) {
    results.push({ runtime, backend, passed: 0, failed: 1, skipped: 0, note: `no uvu summary (exit ${exitCode})` });
    return;
  }
  const failed = total - passed - skipped + (exitCode !== 0 && total === passed + skipped ? 1 : 0);
  results.push({ runtime, backend, passed: passed - skipLines.length, failed, skipped: skipped + skipLines.length, note: exitCode ? `exit ${exitCode}` : '' });
}

function unavailable(runtime, backend, reason, fix) {
  const why = fix ? `${reason} (${fix})` : reason;
  if (CI) results.push({ runtime, backend, passed: 0, failed: 1, skipped: 0, note: `unavailable under CI: ${why}` });
  else results.push({ runtime, backend, passed: 0, failed: 0, skipped: 1, note: `skipped: ${why}` });
  console.log(`${CI ? 'FAIL' : 'SKIP'} ${runtime}/${backend}: ${why}`);
}

/** Runs a command, streaming its output with a prefix; resolves with { code, output }. */
function runProcess(label, cmd, args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => { output += `\n${label}: timed out after ${RUN_TIMEOUT_MS / 1000} s\n`; child.kill('SIGKILL'); }, RUN_TIMEOUT_MS);
    const onData = (chunk) => {
      const s = chunk.toString();
      output += s;
      // Dawn's harmless complaint about XDG_RUNTIME_DIR is dropped from the log.
      process.stdout.write(s.replace(/^.*XDG_RUNTIME_DIR.*\n/gm, ''));
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code: code ?? (signal ? 128 : 1), output }); });
  });
}

const want = (runtime) => only.length === 0 || only.includes(runtime);

// Node: WebGPU through Dawn (npm "webgpu") on SwiftShader's Vulkan (Dawn rejects Debian 12's lavapipe).
if (want('node')) {
  for (const backend of BACKENDS) {
    console.log(`\n━━ node / ${backend}`);
    if (backend === 'webgpu' && (!existsSync(SWIFTSHADER_ICD) || !hasLibVulkan)) {
      unavailable('node', backend, 'no Vulkan driver Dawn accepts (SwiftShader ships with Debian\'s chromium)', 'apt-get install chromium libvulkan1');
      continue;
    }
    const env = backend === 'webgpu' ? { VK_ICD_FILENAMES: SWIFTSHADER_ICD, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } : {};
    const { code, output } = await runProcess('node', process.execPath, [join(outdir, 'node.js'), backend], env);
    tally('node', backend, output, code);
  }
}

// Node only: file output, model folders and the merge-kernels command.
if (want('node')) {
  console.log('\n━━ node / files + cli');
  const { code, output } = await runProcess('node', process.execPath, [join(outdir, 'node-cli.js')]);
  tally('node', 'cli', output, code);
}

// Deno: built-in navigator.gpu (wgpu) on Mesa's lavapipe, or SwiftShader when only that is present.
if (want('deno')) {
  const deno = r('node_modules', '.bin', 'deno');
  for (const backend of BACKENDS) {
    console.log(`\n━━ deno / ${backend}`);
    let env = {};
    if (backend === 'webgpu') {
      const lavapipe = LAVAPIPE_ICDS.find((f) => existsSync(f));
      if (!hasLibVulkan || (!lavapipe && !existsSync(SWIFTSHADER_ICD))) {
        unavailable('deno', backend, 'no Vulkan driver (lavapipe or SwiftShader) is installed', 'apt-get install mesa-vulkan-drivers libvulkan1');
        continue;
      }
      if (!lavapipe) env = { VK_ICD_FILENAMES: SWIFTSHADER_ICD };
    }
    const { code, output } = await runProcess('deno', deno, ['run', '-A', '--no-prompt', '--quiet', join(outdir, 'deno.js'), backend], env);
    tally('deno', backend, output, code);
  }
}

// Chromium: Debian's headless chromium driven by playwright-core, page served from 127.0.0.1.
if (want('chromium')) {
  if (!existsSync(CHROMIUM)) {
    for (const backend of BACKENDS) unavailable('chromium', backend, `no browser at ${CHROMIUM}`, 'apt-get install chromium');
  } else {
    const { chromium } = await import('playwright-core');
    const types = { '.html': 'text/html', '.js': 'text/javascript' };
    const server = createServer((req, res) => {
      const file = join(outdir, new URL(req.url, 'http://x').pathname.replace(/^\/+/, '') || 'index.html');
      if (!file.startsWith(outdir) || !existsSync(file)) { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
    });
    await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
    const port = server.address().port;
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--headless=new', '--enable-unsafe-webgpu', '--enable-features=Vulkan',
        '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--enable-unsafe-swiftshader',
        '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
    try {
      for (const backend of BACKENDS) {
        console.log(`\n━━ chromium / ${backend}`);
        const page = await browser.newPage();
        let output = '';
        const done = new Promise((resolve) => {
          page.on('console', (msg) => {
            const text = msg.text();
            const m = text.match(/^__DONE__ (\d+)(.*)/s);
            if (m) { if (m[2]) output += m[2] + '\n'; resolve(Number(m[1])); return; }
            // uvu writes each test's mark as its own console.log in a page: keep them on one line.
            const plain = text.replace(/\x1b\[[0-9;]*m/g, '');
            const mark = /^\s*[•✘]\s*$/.test(plain);
            output += plain + (mark ? '' : '\n');
            process.stdout.write(mark ? plain : `${plain}\n`);
          });
          page.on('pageerror', (e) => { output += `pageerror: ${e.message}\n`; resolve(1); });
          page.on('crash', () => { output += 'page crashed\n'; resolve(1); });
        });
        await page.goto(`http://127.0.0.1:${port}/index.html?backend=${backend}`);
        const timeout = new Promise((resolve) => setTimeout(() => { output += 'timed out\n'; resolve(124); }, RUN_TIMEOUT_MS));
        const code = await Promise.race([done, timeout]);
        tally('chromium', backend, output, code);
        await page.close();
      }
    } finally {
      await browser.close();
      server.close();
    }
  }
}

// Edge-style runtimes: the built package's wasm backend in workerd (through the "workerd"
// export condition and a precompiled module) and in Bun (the default entry).
if (want('edge')) {
  const edgeDir = r('build', 'edge');
  mkdirSync(edgeDir, { recursive: true });
  await esbuild.build({ bundle: true, format: 'esm', platform: 'neutral', conditions: ['workerd'], entryPoints: [r('test', 'edge', 'worker.ts')], outfile: join(edgeDir, 'worker.js'), external: ['*.wasm'], logLevel: 'warning', alias: { 'merge-kernels': r('dist', 'index.workerd.js') } });
  copyFileSync(r('dist', 'kernels.wasm'), join(edgeDir, 'kernels.wasm'));
  copyFileSync(r('test', 'edge', 'config.capnp'), join(edgeDir, 'config.capnp'));
  console.log('\n━━ workerd / wasm (dist/index.workerd.js)');
  const w = await runProcess('workerd', r('node_modules', '.bin', 'workerd'), ['test', join(edgeDir, 'config.capnp')]);
  const wOk = w.code === 0 && /\[ PASS \]/.test(w.output);
  results.push({ runtime: 'workerd', backend: 'wasm', passed: wOk ? 1 : 0, failed: wOk ? 0 : 1, skipped: 0, note: wOk ? 'smoke' : `exit ${w.code}` });
  console.log('\n━━ bun / wasm (dist/index.js)');
  const b = await runProcess('bun', r('node_modules', '.bin', 'bun'), [r('test', 'edge', 'bun.mjs')]);
  const bOk = b.code === 0 && /bun smoke: ok/.test(b.output);
  results.push({ runtime: 'bun', backend: 'wasm', passed: bOk ? 1 : 0, failed: bOk ? 0 : 1, skipped: 0, note: bOk ? 'smoke' : `exit ${b.code}` });
}

// The table.
const pad = (s, n) => String(s).padEnd(n);
console.log('\n' + ['runtime', 'backend', 'passed', 'failed', 'skipped', 'note'].map((h, i) => pad(h, [10, 8, 7, 7, 8, 0][i])).join(' '));
for (const x of results) console.log([pad(x.runtime, 10), pad(x.backend, 8), pad(x.passed, 7), pad(x.failed, 7), pad(x.skipped, 8), x.note].join(' '));
if (skips.length) console.log('\nSkipped tests and why:\n' + skips.map((s) => `  ${s}`).join('\n'));
const sum = (k) => results.reduce((a, x) => a + x[k], 0);
console.log(`\n${sum('passed')} passed, ${sum('failed')} failed, ${sum('skipped')} skipped`);
process.exit(sum('failed') > 0 || results.length === 0 ? 1 : 0);
