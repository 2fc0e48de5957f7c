import { describe, expect, it } from 'vitest';

import { banLengthText, banReason, banText, knownNames, messageActions, nameOf, roleOf } from './moderation';
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
    const none = { appoint: null };
    expect(messageActions(by('me'), 'me', 'member', 'u-owner')).toEqual({ edit: true, delete: true, ban: false, ...none });
    expect(messageActions(by('other'), 'me', 'member', 'u-owner')).toEqual({ edit: false, delete: false, ban: false, ...none });
    expect(messageActions(by('other'), 'me', 'moderator', 'u-owner')).toEqual({ edit: false, delete: true, ban: true, ...none });
    expect(messageActions(by('u-owner'), 'me', 'moderator', 'u-owner')).toEqual({ edit: false, delete: false, ban: false, ...none });
    expect(messageActions(by('u-owner'), 'u-owner', 'owner', 'u-owner')).toEqual({ edit: true, delete: true, ban: false, ...none });
    expect(messageActions(by('me', 'failed'), 'me', 'owner', 'me')).toEqual({ edit: false, delete: false, ban: false, ...none });
  });

  it('bans nobody who moderates (the server refuses it), and lets only the owner appoint', () => {
    const by = (id: string) => ({ user: { id }, status: 'sent' });
    expect(messageActions(by('mod'), 'me', 'moderator', 'u-owner', true)).toEqual({ edit: false, delete: true, ban: false, appoint: null });
    expect(messageActions(by('mod'), 'u-owner', 'owner', 'u-owner', true)).toEqual({ edit: false, delete: true, ban: false, appoint: 'remove' });
    expect(messageActions(by('other'), 'u-owner', 'owner', 'u-owner')).toMatchObject({ ban: true, appoint: 'make' });
    expect(messageActions({ user: { id: 'other' }, status: 'pending' }, 'u-owner', 'owner', 'u-owner').appoint).toBeNull();
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

describe('the moderation panel', () => {
  it('names a user it knows, else by the random end of the id', () => {
    const names = knownNames([{ id: 'u-1', name: 'bob' }, undefined]);
    expect(nameOf('u-1', names)).toBe('bob');
    expect(nameOf('0190a0a0-0000-7000-8000-00000000c0de', names)).toBe('user 0000c0de');
  });

  it('says until when a ban lasts, or until lifted', () => {
    const until = '2025-01-01T10:00:00Z';
    expect(banLengthText(until)).toBe(`until ${formatTime(until)}`);
    expect(banLengthText(null)).toBe('until lifted');
  });
});
