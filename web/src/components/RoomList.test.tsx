import { cleanup, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';

import type { Api } from '../api';
import type { Room } from '../types';
import { RoomList } from './RoomList';

const room = (id: string, name: string, online?: number | null): Room => ({
  id,
  name,
  created_at: '2025-01-01T00:00:00Z',
  hot: false,
  ...(online === undefined ? {} : { online }),
});

describe('RoomList', () => {
  afterEach(cleanup);

  it('shows how many watch a room when the server knows it', async () => {
    const rooms = [room('r1', 'lobby', 1234), room('r2', 'quiet', null), room('r3', 'old')];
    const api = { listRooms: async () => rooms } as unknown as Api;
    render(<RoomList api={api} currentRoomId={null} onRooms={() => {}} />);
    const item = (name: string) => screen.getByRole('link', { name: new RegExp(name) }).closest('li')!;
    await waitFor(() => expect(screen.getAllByRole('listitem')).toHaveLength(3));
    expect(within(item('lobby')).getByText('1,234 watching')).toBeTruthy();
    expect(within(item('quiet')).queryByText(/watching/)).toBeNull();
    expect(within(item('old')).queryByText(/watching/)).toBeNull();
  });
});
