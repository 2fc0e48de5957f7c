// Which reactions the signed-in user made, remembered in localStorage. The history API gives counts only,
// not whether they include us, so after a reload this is how a reaction button knows it is pressed.
// (A wrong guess corrects itself: see `settleReaction` in messages.ts.)

const LIMIT = 1000;

export class ReactionMemory {
  private entries: string[];
  private readonly key: string;

  constructor(
    userId: string,
    private readonly storage: Storage | null = typeof localStorage === 'undefined' ? null : localStorage,
  ) {
    this.key = `hotchat.reactions.${userId}`;
    try {
      const parsed = JSON.parse(this.storage?.getItem(this.key) ?? '[]');
      this.entries = Array.isArray(parsed) ? parsed.filter((e) => typeof e === 'string') : [];
    } catch {
      this.entries = [];
    }
  }

  /** Emojis remembered for a message. */
  mine(messageId: string): string[] {
    const prefix = `${messageId} `;
    return this.entries.filter((e) => e.startsWith(prefix)).map((e) => e.slice(prefix.length));
  }

  set(messageId: string, emoji: string, on: boolean): void {
    const entry = `${messageId} ${emoji}`;
    const has = this.entries.includes(entry);
    if (has === on) return;
    this.entries = on ? [...this.entries, entry].slice(-LIMIT) : this.entries.filter((e) => e !== entry);
    try {
      this.storage?.setItem(this.key, JSON.stringify(this.entries));
    } catch {
      // Storage full or denied: the memory is a nicety.
    }
  }
}
