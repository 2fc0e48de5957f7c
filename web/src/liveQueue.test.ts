import { afterEach, describe, expect, it, vi } from 'vitest';

import { ChangeQueue, FRAME_FALLBACK_MS, nextFrame, type Change } from './liveQueue';

/** A queue over a list of numbers whose flushes run when the test says. */
function manualQueue() {
  let state: number[] = [];
  const applied: Change<number[]>[] = [];
  const scheduled: (() => void)[] = [];
  const queue = new ChangeQueue<number[]>(
    (change) => {
      applied.push(change);
      state = change(state);
    },
    (fn) => {
      scheduled.push(fn);
      return () => scheduled.splice(scheduled.indexOf(fn), 1);
    },
  );
  const frame = () => scheduled.splice(0).forEach((fn) => fn());
  return { queue, applied, scheduled, frame, state: () => state };
}

const append = (n: number) => (s: number[]) => [...s, n];

describe('ChangeQueue', () => {
  it('applies everything queued before a frame as one change, in order', () => {
    const q = manualQueue();
    for (let n = 1; n <= 5; n++) q.queue.push(append(n));
    expect(q.scheduled).toHaveLength(1);
    expect(q.applied).toHaveLength(0);
    q.frame();
    expect(q.applied).toHaveLength(1);
    expect(q.state()).toEqual([1, 2, 3, 4, 5]);
    // The next event schedules the next frame.
    q.queue.push(append(6));
    q.frame();
    expect(q.applied).toHaveLength(2);
    expect(q.state()).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('hands what is queued to a caller that must come after it, cancelling the frame', () => {
    const q = manualQueue();
    q.queue.push(append(1));
    q.queue.push(append(2));
    const queued = q.queue.take()!;
    expect(queued([0])).toEqual([0, 1, 2]);
    expect(q.scheduled).toHaveLength(0);
    expect(q.queue.take()).toBeNull();
  });

  it('flushes on demand, and does nothing when empty', () => {
    const q = manualQueue();
    q.queue.flush();
    expect(q.applied).toHaveLength(0);
    q.queue.push(append(1));
    q.queue.flush();
    expect(q.state()).toEqual([1]);
    expect(q.scheduled).toHaveLength(0);
  });

  it('drops what is queued once disposed, and takes no more', () => {
    const q = manualQueue();
    q.queue.push(append(1));
    q.queue.dispose();
    q.queue.push(append(2));
    q.frame();
    expect(q.applied).toHaveLength(0);
  });
});

describe('nextFrame', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it('runs once, on the animation frame when there is one', () => {
    vi.useFakeTimers();
    const frames: FrameRequestCallback[] = [];
    vi.stubGlobal('requestAnimationFrame', (cb: FrameRequestCallback) => frames.push(cb));
    vi.stubGlobal('cancelAnimationFrame', () => {});
    const fn = vi.fn();
    nextFrame(fn);
    expect(fn).not.toHaveBeenCalled();
    frames.forEach((cb) => cb(0));
    expect(fn).toHaveBeenCalledTimes(1);
    // The fallback timer was cancelled.
    vi.advanceTimersByTime(FRAME_FALLBACK_MS);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('falls back to a timer when no frame comes (e.g. the tab was hidden), and can be cancelled', () => {
    vi.useFakeTimers();
    vi.stubGlobal('requestAnimationFrame', () => 1);
    vi.stubGlobal('cancelAnimationFrame', () => {});
    const fn = vi.fn();
    nextFrame(fn);
    vi.advanceTimersByTime(FRAME_FALLBACK_MS);
    expect(fn).toHaveBeenCalledTimes(1);
    const cancelled = vi.fn();
    nextFrame(cancelled)();
    vi.advanceTimersByTime(FRAME_FALLBACK_MS);
    expect(cancelled).not.toHaveBeenCalled();
  });

  it('uses a zero timer without requestAnimationFrame, or in a hidden tab (which gets no frames)', () => {
    vi.useFakeTimers();
    vi.stubGlobal('requestAnimationFrame', undefined);
    const fn = vi.fn();
    nextFrame(fn);
    vi.advanceTimersByTime(0);
    expect(fn).toHaveBeenCalledTimes(1);

    const frame = vi.fn(() => 1);
    vi.stubGlobal('requestAnimationFrame', frame);
    vi.spyOn(document, 'hidden', 'get').mockReturnValue(true);
    nextFrame(fn);
    vi.advanceTimersByTime(0);
    expect(fn).toHaveBeenCalledTimes(2);
    expect(frame).not.toHaveBeenCalled();
  });
});
