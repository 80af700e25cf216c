// The embeddable widget: ONE self-contained IIFE at dist/widget.js (CSS is inlined and
// injected into a shadow root; no chunks, no separate files).
import { defineConfig } from 'vite';

export default defineConfig({
  publicDir: false,
  build: {
    outDir: 'dist',
    emptyOutDir: false,
    target: 'es2020',
    copyPublicDir: false,
    lib: {
      entry: 'src/widget/main.ts',
      name: 'ConfabWidget',
      formats: ['iife'],
      fileName: () => 'widget.js',
    },
    minify: true,
  },
});
