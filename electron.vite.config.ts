/**
 * Builds the Electron shell (main process and preload bridge) and the Svelte renderer into out/.
 * The renderer bundle is also what `vos daemon --web` serves. Node-side code for the CLI and
 * the headless agent is built by tsc (tsconfig.node.json) into out/node.
 */
import { resolve } from 'node:path';
import { defineConfig } from 'electron-vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

export default defineConfig({
  main: {
    build: {
      outDir: 'out/main',
      rolldownOptions: { input: { index: resolve('src-main/shell/main.ts') } },
    },
  },
  preload: {
    build: {
      outDir: 'out/preload',
      rolldownOptions: { input: { index: resolve('src-main/shell/preload.ts') } },
    },
  },
  renderer: {
    root: resolve('src-renderer'),
    base: './',
    plugins: [svelte({ configFile: resolve('svelte.config.js') })],
    build: {
      outDir: resolve('out/renderer'),
      emptyOutDir: true,
      rolldownOptions: { input: { index: resolve('src-renderer/index.html') } },
    },
  },
});
