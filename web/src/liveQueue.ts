// Live events that arrive together are applied in one React update. A throttled room's server writes a
// batch of events per 100 ms, and the browser dispatches each as its own task: applied one by one, a
// busy room would render once per event. Instead they are queued as changes and folded over the state
// once per animation frame, in the order they came, by one `setState`.

/** A change to a state, as `setState`'s updater takes it. */
export type Change<S> = (state: S) => S;

/** Stops a scheduled run (no-op once it ran). */
export type Cancel = () => void;

/**
 * How long a scheduled frame may wait for `requestAnimationFrame` before a timer runs it: a tab hidden
 * after scheduling gets no frames at all, and its queue must not grow until it is shown again.
 */
export const FRAME_FALLBACK_MS = 100;

/**
 * Runs `fn` once, before the next paint: by `requestAnimationFrame`, or by a timer where there is none or
 * the tab is hidden (a timer, not a microtask, so that events dispatched meanwhile still join the batch).
 */
export function nextFrame(fn: () => void): Cancel {
  let done = false;
  const hasFrames = typeof requestAnimationFrame === 'function' && typeof document !== 'undefined' && !document.hidden;
  const frame = hasFrames ? requestAnimationFrame(() => run()) : null;
  const timer = setTimeout(() => run(), hasFrames ? FRAME_FALLBACK_MS : 0);
  function cancel() {
    done = true;
    if (frame !== null) cancelAnimationFrame(frame);
    clearTimeout(timer);
  }
  function run() {
    if (done) return;
    cancel();
    fn();
  }
  return cancel;
}

export class ChangeQueue<S> {
  private changes: Change<S>[] = [];
  private cancel: Cancel | null = null;
  private disposed = false;

  /** `apply` gets all queued changes as one; `schedule` runs the flush (default: the next frame). */
  constructor(
    private readonly apply: (change: Change<S>) => void,
    private readonly schedule: (fn: () => void) => Cancel = nextFrame,
  ) {}

  /** Queues a change, to be applied with the others at the next flush. */
  push(change: Change<S>): void {
    if (this.disposed) return;
    this.changes.push(change);
    this.cancel ??= this.schedule(() => {
      this.cancel = null;
      this.flush();
    });
  }

  /** The queued changes folded into one, in order, emptying the queue; null when none are queued. */
  take(): Change<S> | null {
    this.cancel?.();
    this.cancel = null;
    if (this.changes.length === 0) return null;
    const changes = this.changes;
    this.changes = [];
    return (state) => changes.reduce((s, change) => change(s), state);
  }

  /** Applies what is queued now (e.g. before something that must see it). */
  flush(): void {
    const change = this.take();
    if (change) this.apply(change);
  }

  /** Drops what is queued and queues nothing more (the room was left). */
  dispose(): void {
    this.take();
    this.disposed = true;
  }
}
