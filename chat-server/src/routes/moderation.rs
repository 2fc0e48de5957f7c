//! Running a room: its owner appoints moderators; the owner and moderators ban users.
//!
//! Each change is an event (`moderator.added`, `moderator.removed`, `user.banned`,
//! `user.unbanned`) and is answered once this chat-server's write model has applied it; every
//! chat-server catches up with the log before deciding a write, so the next write anywhere is
//! checked against it. Nobody acts on the owner, and a moderator cannot be banned while they are
//! one. Asking for what already holds (appointing a moderator twice, lifting no ban) answers the
//! same and writes nothing.

use axum::{Json, extract::State, http::StatusCode};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use shared::{
    event::{Envelope, EventBody, User},
    http::ApiPath,
    openapi::{Forbidden, InvalidBody, NotFound, RateLimited, Unauthorized, Unavailable},
    readmodel::{Ban, Moderator, Room, Standing},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{append_settled, not_banned, standing, synced_room};
use crate::{
    auth::AuthUser,
    error::{ApiError, ApiJson},
    moderation::{forbidden, runs_room},
    state::AppState,
    validate,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(moderators))
        .routes(routes!(appoint, dismiss))
        .routes(routes!(bans))
        .routes(routes!(ban, unban))
}

#[derive(Serialize, ToSchema)]
struct ModeratorList {
    /// Longest-serving first.
    moderators: Vec<Moderator>,
}

/// The room's moderators (public: clients show who runs the room).
#[utoipa::path(get, path = "/api/rooms/{room}/moderators", operation_id = "list_moderators",
    tag = "moderation",
    params(("room" = Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "The moderators", body = ModeratorList),
        NotFound,
        Unavailable,
    ))]
async fn moderators(
    State(state): State<AppState>,
    ApiPath(room): ApiPath<String>,
) -> Result<Json<ModeratorList>, ApiError> {
    let room = synced_room(&state, &room).await?;
    let moderators = state.write.read(|facts| facts.moderators(room.id));
    Ok(Json(ModeratorList { moderators }))
}

/// What a change of roles or bans did.
#[derive(Serialize, ToSchema)]
struct Changed {
    user_id: Uuid,
}

type Accepted<T> = Result<(StatusCode, Json<T>), ApiError>;

/// The room, the target user and the actor's standing, once the actor may act on the target:
/// signed in, not banned, with a role `allowed` accepts, and the target is not the owner.
async fn acting_on(
    state: &AppState,
    actor: &User,
    (room, target): (String, String),
    allowed: fn(&Standing, Uuid) -> bool,
    role: &str,
) -> Result<(Room, Uuid), ApiError> {
    let room = synced_room(state, &room).await?;
    let target: Uuid = target
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_user", "the path must name a user id"))?;
    let standing = not_banned(state, &room, actor.id)?;
    if !allowed(&standing, actor.id) {
        return Err(forbidden(format!("only {role} can do this")));
    }
    if target == room.owner.id {
        return Err(forbidden("nobody can act on the room's owner"));
    }
    Ok((room, target))
}

fn owns(standing: &Standing, user: Uuid) -> bool {
    standing.owner == user
}

/// Makes a user a moderator of the room: its owner may.
#[utoipa::path(put, path = "/api/rooms/{room}/moderators/{user}", operation_id = "appoint_moderator",
    tag = "moderation",
    params(
        ("room" = Uuid, Path, description = "The room's id"),
        ("user" = Uuid, Path, description = "The user's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The user is a moderator", body = Changed),
        InvalidBody,
        Unauthorized,
        Forbidden,
        NotFound,
        RateLimited,
        Unavailable,
    ))]
async fn appoint(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(path): ApiPath<(String, String)>,
) -> Accepted<Changed> {
    let (room, target) = acting_on(&state, &user, path, owns, "the room's owner").await?;
    let standing = standing(&state, &room, target);
    if !standing.moderator {
        let body = EventBody::ModeratorAdded { user_id: target };
        append_settled(&state, &Envelope::new(room.id, user, body)).await?;
    }
    Ok((StatusCode::ACCEPTED, Json(Changed { user_id: target })))
}

/// Takes a user's moderator role away: the room's owner may.
#[utoipa::path(delete, path = "/api/rooms/{room}/moderators/{user}", operation_id = "dismiss_moderator",
    tag = "moderation",
    params(
        ("room" = Uuid, Path, description = "The room's id"),
        ("user" = Uuid, Path, description = "The user's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The user is not a moderator", body = Changed),
        InvalidBody,
        Unauthorized,
        Forbidden,
        NotFound,
        RateLimited,
        Unavailable,
    ))]
async fn dismiss(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(path): ApiPath<(String, String)>,
) -> Accepted<Changed> {
    let (room, target) = acting_on(&state, &user, path, owns, "the room's owner").await?;
    let standing = standing(&state, &room, target);
    if standing.moderator {
        let body = EventBody::ModeratorRemoved { user_id: target };
        append_settled(&state, &Envelope::new(room.id, user, body)).await?;
    }
    Ok((StatusCode::ACCEPTED, Json(Changed { user_id: target })))
}

#[derive(Serialize, ToSchema)]
struct BanList {
    /// The bans in force, newest first.
    bans: Vec<Ban>,
}

/// The bans in force in the room: its owner and moderators may see them.
#[utoipa::path(get, path = "/api/rooms/{room}/bans", operation_id = "list_bans", tag = "moderation",
    params(("room" = Uuid, Path, description = "The room's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The bans in force", body = BanList),
        Unauthorized,
        Forbidden,
        NotFound,
        Unavailable,
    ))]
async fn bans(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(room): ApiPath<String>,
) -> Result<Json<BanList>, ApiError> {
    let room = synced_room(&state, &room).await?;
    let standing = standing(&state, &room, user.id);
    if !runs_room(&standing, user.id) {
        return Err(forbidden(
            "only the room's owner and moderators can see its bans",
        ));
    }
    let bans = state.write.read(|facts| facts.bans(room.id, Utc::now()));
    Ok(Json(BanList { bans }))
}

#[derive(Deserialize, ToSchema)]
struct NewBan {
    /// How long the ban lasts, 1 s to a year; `null` or absent: until lifted.
    #[schema(minimum = 1, maximum = 31_536_000)]
    #[serde(default)]
    seconds: Option<i64>,
    /// Shown to the room's moderators; at most 200 characters.
    #[schema(max_length = 200)]
    #[serde(default)]
    reason: String,
}

/// Bans a user from posting, editing and reacting in the room: its owner and moderators may. A
/// ban replaces the user's earlier one.
#[utoipa::path(put, path = "/api/rooms/{room}/bans/{user}", operation_id = "ban_user", tag = "moderation",
    params(
        ("room" = Uuid, Path, description = "The room's id"),
        ("user" = Uuid, Path, description = "The user's id"),
    ),
    request_body = NewBan,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The ban is in force", body = Ban),
        InvalidBody,
        Unauthorized,
        Forbidden,
        NotFound,
        RateLimited,
        Unavailable,
    ))]
async fn ban(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<NewBan>,
) -> Accepted<Ban> {
    let seconds = validate::ban_secs(body.seconds).map_err(invalid)?;
    let reason = validate::reason(&body.reason).map_err(invalid)?;
    let (room, target) = acting_on(
        &state,
        &user,
        path,
        runs_room,
        "the room's owner or a moderator",
    )
    .await?;
    let standing = standing(&state, &room, target);
    if standing.moderator {
        return Err(forbidden(
            "a moderator cannot be banned; the owner can remove their role first",
        ));
    }
    let event = Envelope::new(
        room.id,
        user,
        EventBody::UserBanned {
            user_id: target,
            until: None,
            reason: reason.to_owned(),
        },
    );
    // The ban ends counted from the event's own time.
    let until = seconds.map(|s| event.at + chrono::Duration::seconds(s.into()));
    let event = Envelope {
        body: EventBody::UserBanned {
            user_id: target,
            until,
            reason: reason.to_owned(),
        },
        ..event
    };
    append_settled(&state, &event).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Ban {
            user_id: target,
            until,
            reason: reason.to_owned(),
            by: event.user,
            at: event.at,
        }),
    ))
}

/// Lifts a user's ban in the room: its owner and moderators may.
#[utoipa::path(delete, path = "/api/rooms/{room}/bans/{user}", operation_id = "unban_user",
    tag = "moderation",
    params(
        ("room" = Uuid, Path, description = "The room's id"),
        ("user" = Uuid, Path, description = "The user's id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The user is not banned", body = Changed),
        InvalidBody,
        Unauthorized,
        Forbidden,
        NotFound,
        RateLimited,
        Unavailable,
    ))]
async fn unban(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(path): ApiPath<(String, String)>,
) -> Accepted<Changed> {
    let (room, target) = acting_on(
        &state,
        &user,
        path,
        runs_room,
        "the room's owner or a moderator",
    )
    .await?;
    let standing = standing(&state, &room, target);
    if standing.ban.is_some() {
        let body = EventBody::UserUnbanned { user_id: target };
        append_settled(&state, &Envelope::new(room.id, user, body)).await?;
    }
    Ok((StatusCode::ACCEPTED, Json(Changed { user_id: target })))
}

fn invalid(e: validate::Invalid) -> ApiError {
    ApiError::bad_request(e.code, e.message)
}
