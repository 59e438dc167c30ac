//! Completes the generated OpenAPI document with the error answers every
//! operation can give, derived from what the operation is (authenticated,
//! takes path ids, a query, a body, an `Idempotency-Key`), so a handler's
//! `#[utoipa::path]` lists only what is particular to it and nothing the
//! shared layers add (the guard's 401/403/429/503, the extractors' 400,
//! the body reader's 408/413) can be forgotten. The schema check
//! (`.ci/schema-check.sh`) holds the server to the result.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// What about an operation decides which errors it can answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traits {
    pub authenticated: bool,
    pub path_params: bool,
    pub query_params: bool,
    pub body: bool,
    pub idempotency_key: bool,
}

impl Traits {
    pub fn of(op: &Operation) -> Self {
        let params = op.parameters.iter().flatten().filter_map(|p| match p {
            RefOr::T(p) => Some(p),
            RefOr::Ref(_) => None,
        });
        let mut t = Traits {
            authenticated: op.security.as_ref().is_some_and(|s| !s.is_empty()),
            body: op.request_body.is_some(),
            ..Default::default()
        };
        for p in params {
            match p.parameter_in {
                ParameterIn::Path => t.path_params = true,
                ParameterIn::Query => t.query_params = true,
                ParameterIn::Header if p.name.eq_ignore_ascii_case("idempotency-key") => {
                    t.idempotency_key = true
                }
                _ => {}
            }
        }
        t
    }

    /// `(status, codes)` of every error this kind of operation can answer.
    pub fn errors(self) -> Vec<(&'static str, &'static str)> {
        let mut e = Vec::new();
        if self.path_params || self.query_params || self.body || self.idempotency_key {
            e.push(("400", "validation_failed"));
        }
        if self.authenticated {
            e.push((
                "401",
                "api_key_missing | api_key_invalid | api_key_revoked | api_key_expired",
            ));
            e.push(("403", "api_scope_denied"));
        }
        if self.path_params {
            e.push(("404", "not_found"));
        }
        if self.body {
            e.push(("408", "request_timeout"));
        }
        if self.idempotency_key {
            e.push(("409", "idempotency_conflict"));
        }
        if self.body {
            e.push(("413", "payload_too_large"));
        }
        if self.authenticated {
            e.push(("429", "rate_limited"));
            e.push(("503", "public_api_disabled | service_unavailable"));
        }
        e
    }
}

/// Adds the missing error answers to every operation of `doc`.
pub fn complete(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            for (status, codes) in Traits::of(op).errors() {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error_response(status, codes));
            }
        }
    }
}

fn error_response(status: &str, codes: &str) -> RefOr<utoipa::openapi::Response> {
    let mut r = ResponseBuilder::new().description(codes).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
            .build(),
    );
    if status == "429" || status == "503" {
        r = r.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                .description(Some("seconds to wait before retrying"))
                .build(),
        );
    }
    RefOr::T(r.build())
}

#[cfg(test)]
mod tests {
    use super::Traits;

    fn statuses(t: Traits) -> Vec<&'static str> {
        t.errors().into_iter().map(|(s, _)| s).collect()
    }

    #[test]
    fn each_trait_brings_its_errors() {
        assert!(statuses(Traits::default()).is_empty(), "a bare public GET");
        let authed = Traits {
            authenticated: true,
            ..Default::default()
        };
        assert_eq!(statuses(authed), ["401", "403", "429", "503"]);
        let rotate = Traits {
            authenticated: true,
            path_params: true,
            idempotency_key: true,
            ..Default::default()
        };
        assert_eq!(
            statuses(rotate),
            ["400", "401", "403", "404", "409", "429", "503"]
        );
        let upload = Traits {
            authenticated: true,
            body: true,
            idempotency_key: true,
            ..Default::default()
        };
        assert_eq!(
            statuses(upload),
            ["400", "401", "403", "408", "409", "413", "429", "503"]
        );
    }
}
