import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { RefetchScheduler, refetchIntervalMs } from './refetch';

describe('RefetchScheduler', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  /** A run that stays in flight until `finish()` is called. */
  function controlledRun() {
    const finishers: (() => void)[] = [];
    const run = vi.fn(() => new Promise<void>((resolve) => finishers.push(resolve)));
    return { run, finish: async () => { finishers.shift()?.(); await vi.advanceTimersByTimeAsync(0); } };
  }

  it('runs the first request at once', async () => {
    const { run } = controlledRun();
    new RefetchScheduler(run, { intervalMs: () => 1000 }).request();
    await vi.advanceTimersByTimeAsync(0);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('coalesces requests made while a run is in flight into one more run', async () => {
    const { run, finish } = controlledRun();
    const scheduler = new RefetchScheduler(run, { intervalMs: () => 1000 });
    scheduler.request();
    await vi.advanceTimersByTimeAsync(0);
    scheduler.request();
    scheduler.request();
    scheduler.request();
    await finish();
    await vi.advanceTimersByTimeAsync(1000);
    expect(run).toHaveBeenCalledTimes(2);
    await finish();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(run).toHaveBeenCalledTimes(2);
  });

  it('spaces runs by the interval of the room’s mode', async () => {
    const { run, finish } = controlledRun();
    const scheduler = new RefetchScheduler(run, { intervalMs: (mode) => (mode === 'throttled' ? 5000 : 1000) });
    scheduler.setMode('throttled');
    scheduler.request();
    await vi.advanceTimersByTimeAsync(0);
    await finish();
    scheduler.request(); // e.g. a second reset right after
    await vi.advanceTimersByTimeAsync(4999);
    expect(run).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(run).toHaveBeenCalledTimes(2);
    await finish();
    scheduler.setMode('normal');
    scheduler.request();
    await vi.advanceTimersByTimeAsync(1000);
    expect(run).toHaveBeenCalledTimes(3);
  });

  it('never runs sooner than the interval the server announced with the mode', async () => {
    const { run, finish } = controlledRun();
    const scheduler = new RefetchScheduler(run, { intervalMs: () => 1000 });
    scheduler.setMode('throttled', 8000);
    scheduler.request();
    await vi.advanceTimersByTimeAsync(0);
    await finish();
    scheduler.request();
    await vi.advanceTimersByTimeAsync(7999);
    expect(run).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(run).toHaveBeenCalledTimes(2);
    await finish();
    // Back to normal: the server lifts its floor.
    scheduler.setMode('normal', 0);
    scheduler.request();
    await vi.advanceTimersByTimeAsync(1000);
    expect(run).toHaveBeenCalledTimes(3);
  });

  it('keeps going after a failed run and stops when disposed', async () => {
    const run = vi.fn(async () => {
      throw new Error('boom');
    });
    const scheduler = new RefetchScheduler(run, { intervalMs: () => 100 });
    scheduler.request();
    await vi.advanceTimersByTimeAsync(0);
    scheduler.request();
    await vi.advanceTimersByTimeAsync(100);
    expect(run).toHaveBeenCalledTimes(2);
    scheduler.request();
    scheduler.dispose();
    await vi.advanceTimersByTimeAsync(1000);
    expect(run).toHaveBeenCalledTimes(2);
  });

  it('uses a long, spread interval in a throttled room', () => {
    expect(refetchIntervalMs('normal')).toBe(1000);
    expect(refetchIntervalMs('throttled', () => 0)).toBe(5000);
    expect(refetchIntervalMs('throttled', () => 1)).toBe(7500);
  });
});
