// Coalesces history refetches: any number of requests while one is due or running make one more run at
// most, and runs are spaced by a minimum interval that is much longer while the room is throttled, so a
// busy room is not hammered by every client refetching after each `reset`.

import type { RoomMode } from './types';

/** Least time between the starts of two refetches. */
export function refetchIntervalMs(mode: RoomMode, random: () => number = Math.random): number {
  // Throttled: 5–7.5 s, spread so that the clients of a busy room do not come back together.
  return mode === 'throttled' ? Math.round(5000 + random() * 2500) : 1000;
}

export interface RefetchSchedulerOptions {
  intervalMs?: (mode: RoomMode) => number;
  now?: () => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (timer: unknown) => void;
}

export class RefetchScheduler {
  private mode: RoomMode = 'normal';
  /** The server's own floor (`fetch_interval_ms` of `event: mode`): never fetch sooner. */
  private serverFloorMs = 0;
  private lastStart = -Infinity;
  private running = false;
  private again = false;
  private timer: unknown = null;
  private disposed = false;
  private readonly interval: (mode: RoomMode) => number;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (timer: unknown) => void;

  constructor(
    private readonly run: () => Promise<void>,
    options: RefetchSchedulerOptions = {},
  ) {
    this.interval = options.intervalMs ?? ((mode) => refetchIntervalMs(mode));
    this.now = options.now ?? (() => Date.now());
    this.setTimer = options.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = options.clearTimeout ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>));
  }

  /** The room's mode, and the least interval the server asked for with it (if it said). */
  setMode(mode: RoomMode, serverFloorMs?: number): void {
    this.mode = mode;
    if (serverFloorMs !== undefined) this.serverFloorMs = serverFloorMs;
  }

  /** Whether a refetch is scheduled or running. */
  get busy(): boolean {
    return this.running || this.timer !== null;
  }

  /** Asks for a refetch: runs now if allowed, else once the interval has passed. */
  request(): void {
    if (this.disposed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer !== null) return;
    const interval = Math.max(this.interval(this.mode), this.serverFloorMs);
    const wait = Math.max(0, this.lastStart + interval - this.now());
    this.timer = this.setTimer(() => {
      this.timer = null;
      void this.execute();
    }, wait);
  }

  dispose(): void {
    this.disposed = true;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
  }

  private async execute() {
    if (this.disposed) return;
    this.running = true;
    this.again = false;
    this.lastStart = this.now();
    try {
      await this.run();
    } catch {
      // The run reports its own errors; a later request tries again.
    } finally {
      this.running = false;
    }
    if (this.again) {
      this.again = false;
      this.request();
    }
  }
}
