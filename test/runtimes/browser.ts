import { run } from '../harness.ts';

const backend = new URLSearchParams(location.search).get('backend') ?? 'js';
run('chromium', backend, navigator.gpu, (line) => console.log(line)).then(
  (code) => console.log(`__DONE__ ${code}`),
  (e) => console.log(`__DONE__ 1 ${(e as Error)?.stack ?? e}`),
);
