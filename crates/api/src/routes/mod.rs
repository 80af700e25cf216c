//! The HTTP routes. Each handler declares its OpenAPI operation, and the operation's tag is
//! its access class: `public`, `visitor`, `agent`, `admin` or `owner`. The authorization
//! matrix test walks the generated document and checks every route against its class.

pub mod agent;
pub mod files;
pub mod widget;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Confab", description = "Live chat and customer messaging. See docs/protocol.md for the sockets and the delivery contract."),
    tags(
        (name = "public", description = "No authentication."),
        (name = "visitor", description = "A visitor token (Authorization: Bearer) from an allowed origin."),
        (name = "agent", description = "A signed-in agent: session cookie with X-CSRF-Token, or an API token."),
        (name = "admin", description = "Admins and the owner."),
        (name = "owner", description = "The owner only (or a rule that only the owner passes)."),
    ),
    components(schemas(
        crate::wire::VisitorClientFrame, crate::wire::VisitorServerFrame,
        crate::wire::AgentClientFrame, crate::wire::AgentServerFrame,
        crate::error::ErrorBody,
        confab_domain::Folder,
    ))
)]
pub struct ApiDoc;

/// Every API route, with its OpenAPI document.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(widget::router())
        .merge(agent::router())
}
