// Where the two APIs are. The chat API is the app's own origin unless VITE_CHAT_URL was set at build
// time. The SSE API's base comes from VITE_EVENTS_URL if set at build time, else from the chat-server's
// `GET /api/config` (its PUBLIC_EVENTS_URL), where "" means the same origin.

import type { Api } from './api';

export const chatBaseUrl: string = (import.meta.env.VITE_CHAT_URL ?? '').replace(/\/+$/, '');

const buildEventsUrl: string | undefined = import.meta.env.VITE_EVENTS_URL;

export async function resolveEventsBaseUrl(api: Api, signal?: AbortSignal): Promise<string> {
  if (buildEventsUrl !== undefined && buildEventsUrl !== '') return buildEventsUrl.replace(/\/+$/, '');
  try {
    const config = await api.config(signal);
    return (config.events_url ?? '').replace(/\/+$/, '') || chatBaseUrl;
  } catch (e) {
    if (signal?.aborted) throw e;
    // An older server without /api/config: assume the events are where the chat API is.
    return chatBaseUrl;
  }
}
