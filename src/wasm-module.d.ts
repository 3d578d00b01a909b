// `import m from './kernels.wasm'` yields a precompiled module in workerd and edge bundlers.
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
