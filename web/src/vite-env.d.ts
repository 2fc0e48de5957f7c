/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** Base URL of the chat API; unset or "" = the page's origin. */
  readonly VITE_CHAT_URL?: string;
  /** Base URL of the SSE API; overrides the chat-server's /api/config. */
  readonly VITE_EVENTS_URL?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}
