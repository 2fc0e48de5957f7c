import { describe, expect, it } from 'vitest';

import { banReason, banText, messageActions, roleOf } from './moderation';
import { formatTime } from './time';

const owner = { id: 'u-owner', name: 'owner' };

describe('roles and message actions', () => {
  it('knows the owner from the room and moderators from the list', () => {
    const room = { owner };
    expect(roleOf(room, [], 'u-owner')).toBe('owner');
    expect(roleOf(room, [{ user_id: 'u-mod', since: 't' }], 'u-mod')).toBe('moderator');
    expect(roleOf(room, [], 'u-mod')).toBe('member');
    expect(roleOf(null, [], 'u-owner')).toBe('member');
  });

  it('lets authors edit and delete, moderators delete and ban (not themselves, not the owner)', () => {
    const by = (id: string, status = 'sent') => ({ user: { id }, status });
    expect(messageActions(by('me'), 'me', 'member', 'u-owner')).toEqual({ edit: true, delete: true, ban: false });
    expect(messageActions(by('other'), 'me', 'member', 'u-owner')).toEqual({ edit: false, delete: false, ban: false });
    expect(messageActions(by('other'), 'me', 'moderator', 'u-owner')).toEqual({ edit: false, delete: true, ban: true });
    expect(messageActions(by('u-owner'), 'me', 'moderator', 'u-owner')).toEqual({ edit: false, delete: false, ban: false });
    expect(messageActions(by('u-owner'), 'u-owner', 'owner', 'u-owner')).toEqual({ edit: true, delete: true, ban: false });
    expect(messageActions(by('me', 'failed'), 'me', 'owner', 'me')).toEqual({ edit: false, delete: false, ban: false });
  });
});

describe('texts', () => {
  it('says until when a ban lasts, or that it is for good', () => {
    const until = '2025-01-01T10:00:00Z';
    expect(banText(until)).toBe(`You are banned from this room until ${formatTime(until)}.`);
    expect(banText(null)).toBe('You are banned from this room for good.');
  });

  it('keeps a ban reason on one line, short, without control characters or half an emoji', () => {
    expect(banReason('buy\nmy\u0007  stuff')).toBe('Banned for the message: "buy my stuff"');
    const long = banReason('🎉'.repeat(300));
    expect(Array.from(long).length).toBeLessThanOrEqual(200);
    expect(long).toMatch(/^Banned for the message: "(🎉){119}…"$/);
  });
});
