//! The HTTP face: routes grouped by the scope they need, each group behind
//! its guard; the OpenAPI document is generated from the same route list.

pub mod account;
pub mod admin;
pub mod auth;
pub mod body;
pub mod callbacks;
pub mod context;
pub mod credits;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod files;
pub mod generation_input;
pub mod generations;
pub mod idempotency;
pub mod keys;
pub mod media;
pub mod models;
pub mod openapi;
pub mod ops;
pub mod prefer;
pub mod webhooks;

use crate::app::AppState;
use auth::{Guard, guard};
use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use gengate_core::scope::{RequestClass, Scope};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "gengate — Rivya Public API v1", version = "1.0.0",
         description = "Asynchronous AI media generation: API keys with scopes, a credit wallet, a Files API, idempotent generation tasks, signed webhooks and a model catalog."),
    modifiers(&SecurityAddon),
    components(schemas(error::ErrorEnvelope, gengate_core::error::FieldIssue)),
    tags((name = "models"), (name = "generations"), (name = "files"), (name = "credits"), (name = "webhooks"), (name = "keys"), (name = "operations"))
)]
pub struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("API key")
                    .build(),
            ),
        );
    }
}

fn guarded(
    state: &AppState,
    scope: Scope,
    class: RequestClass,
    r: OpenApiRouter<AppState>,
) -> OpenApiRouter<AppState> {
    r.route_layer(from_fn_with_state(
        Guard {
            state: state.clone(),
            scope,
            class,
        },
        guard,
    ))
}

/// The route list, with its OpenAPI description.
pub fn api(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let public = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(models::list_models))
        .routes(routes!(models::get_model))
        .routes(routes!(ops::openapi_json));
    let create = guarded(
        state,
        Scope::GenerationsCreate,
        RequestClass::Create,
        OpenApiRouter::new()
            .routes(routes!(generations::create_generation))
            .routes(routes!(generations::cancel_generation)),
    );
    // A quote needs the create scope but costs a read: the playground asks for one as
    // its form changes, and that must not spend the key's create budget.
    let quote = guarded(
        state,
        Scope::GenerationsCreate,
        RequestClass::Read,
        OpenApiRouter::new().routes(routes!(generations::quote_generation)),
    );
    let read = guarded(
        state,
        Scope::GenerationsRead,
        RequestClass::Read,
        OpenApiRouter::new()
            .routes(routes!(generations::get_generation))
            .routes(routes!(generations::list_generations))
            .routes(routes!(generation_input::get_generation_input)),
    );
    let credits = guarded(
        state,
        Scope::CreditsRead,
        RequestClass::Read,
        OpenApiRouter::new()
            .routes(routes!(credits::get_credits))
            .routes(routes!(credits::list_transactions)),
    );
    let keys = guarded(
        state,
        Scope::KeysManage,
        RequestClass::Read,
        OpenApiRouter::new()
            .routes(routes!(keys::list_keys, keys::create_key))
            .routes(routes!(account::update_account))
            .routes(routes!(keys::revoke_key, keys::update_key)),
    );
    let upload = guarded(
        state,
        Scope::FilesCreate,
        RequestClass::Upload,
        OpenApiRouter::new().routes(routes!(files::upload_file)),
    )
    .layer(axum::extract::DefaultBodyLimit::max(
        (gengate_engine::files::MAX_UPLOAD_BYTES + 1024 * 1024) as usize,
    ));
    let read_files = guarded(
        state,
        Scope::FilesRead,
        RequestClass::Read,
        OpenApiRouter::new().routes(routes!(files::get_file)),
    );
    let hooks = guarded(
        state,
        Scope::WebhooksManage,
        RequestClass::Read,
        OpenApiRouter::new()
            .routes(routes!(webhooks::create_endpoint, webhooks::list_endpoints))
            .routes(routes!(
                webhooks::get_endpoint,
                webhooks::update_endpoint,
                webhooks::delete_endpoint
            ))
            .routes(routes!(webhooks::rotate_secret))
            .routes(routes!(webhooks::send_test))
            .routes(routes!(webhooks::list_deliveries))
            .routes(routes!(webhooks::list_events)),
    );
    let (router, mut doc) = public
        .merge(create)
        .merge(quote)
        .merge(read)
        .merge(credits)
        .merge(upload)
        .merge(read_files)
        .merge(hooks)
        .merge(keys)
        .split_for_parts();
    models::document_catalog(&mut doc, &state.engine.catalog.current());
    openapi::complete(&mut doc);
    (router, doc)
}

pub fn router(state: AppState) -> Router {
    let (api_router, doc) = api(&state);
    let doc = std::sync::Arc::new(doc);
    api_router
        .merge(ops::routes())
        .merge(media::routes())
        // The admin API (issue 22): operator keys only, its own OpenAPI document.
        .merge(admin::routes(&state))
        // Vendor callbacks (issue 5): token-checked, outside the public API.
        .merge(callbacks::routes())
        // The web console (issue 12): static files, a client of /api/v1 only.
        .merge(crate::console::routes())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(axum::Extension(doc))
        .layer(from_fn(context::request_context))
        .with_state(state)
}

/// A worker's HTTP face: health, readiness and metrics only; every other
/// path is the JSON 404.
pub fn ops_router(state: AppState) -> Router {
    ops::routes()
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(from_fn(context::request_context))
        .with_state(state)
}
