use super::error::ApiError;
use super::extract::Path;
use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use gengate_core::catalog::{Catalog, Model, ParamType};
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<Model>,
}

/// The model catalog.
#[utoipa::path(get, path = "/api/v1/models", tag = "models", responses((status = 200, body = ModelList)))]
pub async fn list_models(State(st): State<AppState>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: st.engine.catalog.current().models().to_vec(),
    })
}

/// One model of the catalog.
#[utoipa::path(get, path = "/api/v1/models/{model_id}", tag = "models",
    params(("model_id" = String, Path, description = "e.g. kling-3-0")),
    responses((status = 200, body = Model), (status = 404, body = super::error::ErrorEnvelope)))]
pub async fn get_model(
    State(st): State<AppState>,
    Path(model_id): Path<String>,
) -> Result<Json<Model>, ApiError> {
    st.engine
        .catalog
        .current()
        .get(&model_id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("model"))
}

/// Adds a `Params.<model id>` schema per catalog model, built from its
/// parameter specs, so the document describes each model's `params`.
pub fn document_catalog(doc: &mut utoipa::openapi::OpenApi, catalog: &Catalog) {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let components = doc.components.get_or_insert_with(Default::default);
    for m in catalog.models() {
        let mut obj = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(format!("params for {}", m.id)));
        for p in &m.params {
            let mut prop = ObjectBuilder::new().description(Some(p.description.clone()));
            prop = match p.kind {
                ParamType::Select => prop
                    .schema_type(Type::String)
                    .enum_values(p.options.clone())
                    .default(p.default.clone()),
                ParamType::Number => prop
                    .schema_type(Type::Number)
                    .minimum(p.min)
                    .maximum(p.max)
                    .multiple_of(p.step)
                    .default(p.default.clone()),
                ParamType::Text => prop
                    .schema_type(Type::String)
                    .max_length(p.max_length.map(|v| v as usize)),
            };
            obj = obj.property(p.key.clone(), prop);
            if p.required {
                obj = obj.required(p.key.clone());
            }
        }
        let item = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("url", ObjectBuilder::new().schema_type(Type::String))
            .property(
                "kind",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(m.reference_media.kinds.clone())),
            )
            .property("name", ObjectBuilder::new().schema_type(Type::String))
            .property("mimeType", ObjectBuilder::new().schema_type(Type::String))
            .property(
                "durationSeconds",
                ObjectBuilder::new().schema_type(Type::Number),
            )
            .property(
                "durationToken",
                ObjectBuilder::new().schema_type(Type::String),
            )
            .required("url")
            .required("kind");
        obj = obj.property(
            gengate_core::params::REFERENCE_ITEMS_KEY,
            utoipa::openapi::schema::ArrayBuilder::new()
                .items(item)
                .max_items(Some(m.reference_media.max_files as usize)),
        );
        components
            .schemas
            .insert(format!("Params.{}", m.id), obj.into());
    }
}
