//! What deciding a write needs, kept in memory and changed only by events of the log.
//!
//! Pure state: [`Facts::apply`] mirrors what the projector writes into the read model for the same
//! events (a room's owner and slow mode, its moderators and bans, and which recent messages exist,
//! by whom, and whether they were deleted), so a chat-server decides exactly as a reader of the
//! read model would, without asking it. Applying an event twice changes nothing (the producer can
//! write one twice).

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    ops::Bound,
};

use chrono::{DateTime, Utc};
use shared::{
    event::{Envelope, EventBody},
    readmodel::{Ban, Moderator, RecentMessage, Room, Standing, WriteSnapshot},
};
use uuid::Uuid;

/// Rooms, roles, bans and a bounded window of recent messages.
pub struct Facts {
    rooms: HashMap<Uuid, Room>,
    /// Rooms by creation time, then id: the room list's order.
    by_creation: BTreeSet<(DateTime<Utc>, Uuid)>,
    /// Per room: moderator → since.
    moderators: HashMap<Uuid, HashMap<Uuid, DateTime<Utc>>>,
    /// Per room: banned user → their ban (expired ones stay until lifted, as in the read model).
    bans: HashMap<Uuid, HashMap<Uuid, Ban>>,
    messages: HashMap<Uuid, RecentMessage>,
    /// Message ids, oldest first: the window's eviction order.
    order: VecDeque<Uuid>,
    /// Messages remembered at most.
    capacity: usize,
}

impl Facts {
    /// Empty, remembering up to `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self {
            rooms: HashMap::new(),
            by_creation: BTreeSet::new(),
            moderators: HashMap::new(),
            bans: HashMap::new(),
            messages: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Takes in the read model's rows (the state of the log up to the snapshot's positions).
    pub fn load(&mut self, snapshot: WriteSnapshot) {
        for room in snapshot.rooms {
            self.add_room(room);
        }
        for (room, moderator) in snapshot.moderators {
            self.moderators
                .entry(room)
                .or_default()
                .insert(moderator.user_id, moderator.since);
        }
        for (room, ban) in snapshot.bans {
            self.bans.entry(room).or_default().insert(ban.user_id, ban);
        }
        for message in snapshot.messages {
            self.remember(message);
        }
    }

    /// Applies one event of the log.
    pub fn apply(&mut self, event: &Envelope) {
        let room = event.room_id;
        match &event.body {
            EventBody::RoomCreated { name } => {
                if !self.rooms.contains_key(&room) {
                    self.add_room(Room {
                        id: room,
                        name: name.clone(),
                        created_at: event.at,
                        owner: event.user.clone(),
                        slow_mode_secs: 0,
                    });
                }
            }
            EventBody::MessagePosted { message_id, .. } => self.remember(RecentMessage {
                id: *message_id,
                room_id: room,
                author: event.user.id,
                at: event.at,
                deleted: false,
            }),
            EventBody::MessageDeleted { message_id } => {
                if let Some(message) = self.messages.get_mut(message_id)
                    && message.room_id == room
                {
                    message.deleted = true;
                }
            }
            EventBody::RoomUpdated { slow_mode_secs, .. } => {
                if let Some(known) = self.rooms.get_mut(&room) {
                    known.slow_mode_secs = *slow_mode_secs;
                }
            }
            EventBody::ModeratorAdded { user_id } => {
                self.moderators
                    .entry(room)
                    .or_default()
                    .entry(*user_id)
                    .or_insert(event.at);
            }
            EventBody::ModeratorRemoved { user_id } => {
                if let Some(moderators) = self.moderators.get_mut(&room) {
                    moderators.remove(user_id);
                }
            }
            EventBody::UserBanned {
                user_id,
                until,
                reason,
            } => {
                let ban = Ban {
                    user_id: *user_id,
                    until: *until,
                    reason: reason.clone(),
                    by: event.user.clone(),
                    at: event.at,
                };
                self.bans.entry(room).or_default().insert(*user_id, ban);
            }
            EventBody::UserUnbanned { user_id } => {
                if let Some(bans) = self.bans.get_mut(&room) {
                    bans.remove(user_id);
                }
            }
            EventBody::ReactionAdded { .. }
            | EventBody::ReactionRemoved { .. }
            | EventBody::MessageEdited { .. }
            | EventBody::RoomModeChanged { .. } => {}
        }
    }

    fn add_room(&mut self, room: Room) {
        self.by_creation.insert((room.created_at, room.id));
        if let Some(replaced) = self.rooms.insert(room.id, room) {
            self.by_creation.remove(&(replaced.created_at, replaced.id));
        }
    }

    fn remember(&mut self, message: RecentMessage) {
        if self.messages.insert(message.id, message).is_some() {
            return;
        }
        self.order.push_back(message.id);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.messages.remove(&oldest);
            }
        }
    }

    pub fn room(&self, id: Uuid) -> Option<&Room> {
        self.rooms.get(&id)
    }

    /// Up to `limit` rooms in creation order, after the room created at `after` (time, id), or
    /// from the first.
    pub fn rooms_after(&self, after: Option<(DateTime<Utc>, Uuid)>, limit: usize) -> Vec<Room> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.by_creation
            .range((from, Bound::Unbounded))
            .take(limit)
            .filter_map(|(_, id)| self.rooms.get(id).cloned())
            .collect()
    }

    /// `user`'s role and ban in `room`, and the room's slow mode; `None` for an unknown room.
    pub fn standing(&self, room: Uuid, user: Uuid) -> Option<Standing> {
        let known = self.rooms.get(&room)?;
        Some(Standing {
            owner: known.owner.id,
            moderator: self
                .moderators
                .get(&room)
                .is_some_and(|moderators| moderators.contains_key(&user)),
            ban: self
                .bans
                .get(&room)
                .and_then(|bans| bans.get(&user))
                .cloned(),
            slow_mode_secs: known.slow_mode_secs,
        })
    }

    /// A message of the window, deleted or not; `None` if it is older than the window (or unknown).
    pub fn message(&self, id: Uuid) -> Option<RecentMessage> {
        self.messages.get(&id).copied()
    }

    /// The room's moderators, longest-serving first.
    pub fn moderators(&self, room: Uuid) -> Vec<Moderator> {
        let mut moderators: Vec<Moderator> = self
            .moderators
            .get(&room)
            .into_iter()
            .flatten()
            .map(|(user_id, since)| Moderator {
                user_id: *user_id,
                since: *since,
            })
            .collect();
        moderators.sort_by_key(|m| (m.since, m.user_id));
        moderators
    }

    /// The room's bans in force at `now`, newest first.
    pub fn bans(&self, room: Uuid, now: DateTime<Utc>) -> Vec<Ban> {
        let mut bans: Vec<Ban> = self
            .bans
            .get(&room)
            .into_iter()
            .flat_map(HashMap::values)
            .filter(|ban| ban.active(now))
            .cloned()
            .collect();
        bans.sort_by(|a, b| b.at.cmp(&a.at).then(a.user_id.cmp(&b.user_id)));
        bans
    }

    /// Rooms, and messages remembered (for the metrics).
    pub fn sizes(&self) -> (usize, usize) {
        (self.rooms.len(), self.messages.len())
    }
}

#[cfg(test)]
mod tests {
    use shared::event::User;

    use super::*;

    fn user(name: &str) -> User {
        User {
            id: Uuid::now_v7(),
            name: name.into(),
        }
    }

    fn event(room: Uuid, by: &User, body: EventBody) -> Envelope {
        Envelope::new(room, by.clone(), body)
    }

    #[test]
    fn a_room_its_moderators_and_bans_follow_the_log() {
        let (owner, mo, eve) = (user("owner"), user("mo"), user("eve"));
        let room = Uuid::now_v7();
        let mut facts = Facts::new(10);
        assert!(facts.standing(room, eve.id).is_none(), "unknown room");
        facts.apply(&event(
            room,
            &owner,
            EventBody::RoomCreated { name: "r".into() },
        ));
        facts.apply(&event(
            room,
            &owner,
            EventBody::ModeratorAdded { user_id: mo.id },
        ));
        let ban = EventBody::UserBanned {
            user_id: eve.id,
            until: None,
            reason: "spam".into(),
        };
        facts.apply(&event(room, &mo, ban));
        let standing = facts.standing(room, eve.id).unwrap();
        assert_eq!(standing.owner, owner.id);
        assert!(!standing.moderator);
        assert_eq!(standing.ban.as_ref().unwrap().by, mo);
        assert!(facts.standing(room, mo.id).unwrap().moderator);
        assert_eq!(facts.bans(room, Utc::now()).len(), 1);

        facts.apply(&event(
            room,
            &owner,
            EventBody::UserUnbanned { user_id: eve.id },
        ));
        facts.apply(&event(
            room,
            &owner,
            EventBody::ModeratorRemoved { user_id: mo.id },
        ));
        let updated = EventBody::RoomUpdated {
            name: "r".into(),
            owner: owner.clone(),
            created_at: Utc::now(),
            slow_mode_secs: 30,
        };
        facts.apply(&event(room, &owner, updated));
        assert!(facts.standing(room, eve.id).unwrap().ban.is_none());
        assert!(!facts.standing(room, mo.id).unwrap().moderator);
        assert_eq!(facts.standing(room, eve.id).unwrap().slow_mode_secs, 30);
        assert!(facts.moderators(room).is_empty());
    }

    #[test]
    fn a_duplicate_creation_does_not_change_the_owner() {
        let (owner, other) = (user("owner"), user("other"));
        let room = Uuid::now_v7();
        let mut facts = Facts::new(10);
        facts.apply(&event(
            room,
            &owner,
            EventBody::RoomCreated { name: "r".into() },
        ));
        facts.apply(&event(
            room,
            &other,
            EventBody::RoomCreated { name: "x".into() },
        ));
        assert_eq!(facts.room(room).unwrap().owner, owner);
    }

    #[test]
    fn rooms_are_listed_in_creation_order_after_a_cursor() {
        let owner = user("owner");
        let mut facts = Facts::new(10);
        let rooms: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        for (i, room) in rooms.iter().enumerate() {
            let mut created = event(*room, &owner, EventBody::RoomCreated { name: "r".into() });
            created.at = Utc::now() + chrono::Duration::seconds(i as i64);
            facts.apply(&created);
        }
        let ids = |page: Vec<Room>| page.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(facts.rooms_after(None, 3)), rooms[..3]);
        let third = facts.room(rooms[2]).unwrap();
        let after = Some((third.created_at, third.id));
        assert_eq!(ids(facts.rooms_after(after, 3)), rooms[3..]);
    }

    #[test]
    fn messages_are_remembered_in_a_bounded_window_with_their_deletion() {
        let author = user("a");
        let room = Uuid::now_v7();
        let mut facts = Facts::new(2);
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        for id in &ids {
            let body = EventBody::MessagePosted {
                message_id: *id,
                text: "t".into(),
            };
            facts.apply(&event(room, &author, body));
        }
        assert!(facts.message(ids[0]).is_none(), "evicted: the oldest");
        assert_eq!(facts.message(ids[2]).unwrap().author, author.id);
        let elsewhere = Uuid::now_v7();
        facts.apply(&event(
            elsewhere,
            &author,
            EventBody::MessageDeleted { message_id: ids[2] },
        ));
        assert!(
            !facts.message(ids[2]).unwrap().deleted,
            "not that room's message"
        );
        facts.apply(&event(
            room,
            &author,
            EventBody::MessageDeleted { message_id: ids[2] },
        ));
        assert!(facts.message(ids[2]).unwrap().deleted);
    }
}
