// Whole seconds left until a moment, re-rendered as they go down (for "you can post again in N s").

import { useEffect, useReducer } from 'react';

export function secondsLeft(untilMs: number | null, nowMs: number): number {
  return untilMs === null ? 0 : Math.max(0, Math.ceil((untilMs - nowMs) / 1000));
}

export function useSecondsLeft(untilMs: number | null): number {
  const [, tick] = useReducer((n: number) => n + 1, 0);
  useEffect(() => {
    if (untilMs === null || untilMs <= Date.now()) return;
    const timer = setInterval(() => {
      tick();
      if (Date.now() >= untilMs) clearInterval(timer);
    }, 250);
    return () => clearInterval(timer);
  }, [untilMs]);
  return secondsLeft(untilMs, Date.now());
}
