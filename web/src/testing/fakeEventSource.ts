// A stand-in for the browser's EventSource that tests drive by hand.

import type { EventSourceLike } from '../events';

export class FakeEventSource implements EventSourceLike {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 2;
  /** Every instance made, newest last. */
  static instances: FakeEventSource[] = [];

  static latest(): FakeEventSource {
    const last = FakeEventSource.instances[FakeEventSource.instances.length - 1];
    if (!last) throw new Error('no EventSource was made');
    return last;
  }

  readyState = FakeEventSource.CONNECTING;
  onopen: ((this: never, ev: Event) => unknown) | null = null;
  onerror: ((this: never, ev: Event) => unknown) | null = null;
  closed = false;
  private listeners = new Map<string, ((ev: MessageEvent) => void)[]>();
  private lastId = '';

  constructor(readonly url: string) {
    FakeEventSource.instances.push(this);
  }

  addEventListener(type: string, listener: (ev: MessageEvent) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.closed = true;
    this.readyState = FakeEventSource.CLOSED;
  }

  // Driving it:

  open(): void {
    this.readyState = FakeEventSource.OPEN;
    (this.onopen as ((ev: Event) => void) | null)?.(new Event('open'));
  }

  /** Dispatches an event; like the browser, an event without `id` keeps the last id. */
  emit(type: string, data: unknown, id?: string): void {
    if (id !== undefined) this.lastId = id;
    const event = new MessageEvent(type, {
      data: typeof data === 'string' ? data : JSON.stringify(data),
      lastEventId: this.lastId,
    });
    for (const listener of this.listeners.get(type) ?? []) listener(event);
  }

  /** The connection dropped; `giveUp` = the browser will not retry by itself (readyState CLOSED). */
  fail(giveUp = false): void {
    this.readyState = giveUp ? FakeEventSource.CLOSED : FakeEventSource.CONNECTING;
    (this.onerror as ((ev: Event) => void) | null)?.(new Event('error'));
  }
}
