import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

// The API process serves the built client (web/dist) at /; in development
// `npm run dev` proxies the API to a `zongzhi demo` / `zongzhi serve` on :8000.
export default defineConfig({
  plugins: [vue()],
  build: { chunkSizeWarningLimit: 1200 },
  server: {
    proxy: {
      '/graphql': { target: 'http://127.0.0.1:8000', ws: true },
      '/demo': 'http://127.0.0.1:8000',
      '/open311': 'http://127.0.0.1:8000',
    },
  },
  test: { environment: 'jsdom' },
})
