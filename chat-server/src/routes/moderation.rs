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
    http::ApiPath,
    openapi::{Forbidden, InvalidBody, NotFound, RateLimited, Unauthorized, Unavailable},
    readmodel::{Ban, Moderator},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    commands::{self, standing, synced_room},
    error::{ApiError, ApiJson, Refused},
    moderation::runs_room,
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
    let user_id = commands::appoint(&state, user, (&path.0, &path.1)).await?;
    Ok((StatusCode::ACCEPTED, Json(Changed { user_id })))
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
    let user_id = commands::dismiss(&state, user, (&path.0, &path.1)).await?;
    Ok((StatusCode::ACCEPTED, Json(Changed { user_id })))
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
        let only = "only the room's owner and moderators can see its bans";
        return Err(Refused::Forbidden(only.to_owned()).into());
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
    let ban = commands::ban(&state, user, (&path.0, &path.1), seconds, reason).await?;
    Ok((StatusCode::ACCEPTED, Json(ban)))
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
    let user_id = commands::unban(&state, user, (&path.0, &path.1)).await?;
    Ok((StatusCode::ACCEPTED, Json(Changed { user_id })))
}

fn invalid(e: validate::Invalid) -> ApiError {
    ApiError::bad_request(e.code, e.message)
}
