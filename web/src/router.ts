// A very small router: `/` is the room list, `/rooms/<id>` a room. chat-server answers every unknown
// path with index.html, so these URLs survive a reload.

import { useEffect, useState } from 'react';

export type Route = { name: 'home' } | { name: 'room'; roomId: string };

export function parseRoute(pathname: string): Route {
  const match = /^\/rooms\/([^/]+)\/?$/.exec(pathname);
  if (match) return { name: 'room', roomId: decodeURIComponent(match[1]) };
  return { name: 'home' };
}

export function roomPath(roomId: string): string {
  return `/rooms/${encodeURIComponent(roomId)}`;
}

const listeners = new Set<() => void>();

export function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (path === window.location.pathname) return;
  if (options.replace) window.history.replaceState(null, '', path);
  else window.history.pushState(null, '', path);
  listeners.forEach((l) => l());
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.pathname));
  useEffect(() => {
    const update = () => setRoute(parseRoute(window.location.pathname));
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return route;
}
