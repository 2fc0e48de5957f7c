/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// `npm run dev` serves the app on :5173 and proxies the chat API to a local chat-server
// (CHAT_PROXY, default http://127.0.0.1:8080). The SSE API's base URL comes from the chat-server's
// `GET /api/config` (`PUBLIC_EVENTS_URL`), or from VITE_EVENTS_URL at build time.
export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      '/api': process.env.CHAT_PROXY ?? 'http://127.0.0.1:8080',
    },
  },
  build: {
    target: 'es2022',
    sourcemap: false,
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
    restoreMocks: true,
  },
});
