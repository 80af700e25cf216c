// The agent inbox (index.html → dist/index.html + dist/assets/*). public/demo.html is
// copied as-is to dist/demo.html. The widget is built by vite.widget.config.ts.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
  },
  server: {
    proxy: {
      '/api': { target: 'http://127.0.0.1:8080', ws: true, changeOrigin: false },
    },
  },
});
