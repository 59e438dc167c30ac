//! The web console (issue 12): hand-written ES modules and CSS under
//! `crates/gengate-server/console/`, compiled into the binary with
//! `include_bytes!` and served at `/` on the API's own port. No build step,
//! no Node, nothing fetched from anywhere at build or run time.
//!
//! The console is only a client of `/api/v1` (with the user's key), so this
//! module serves static bytes and nothing else. Every answer carries a strict
//! Content-Security-Policy (scripts, styles, media and API calls from this
//! origin only; no inline script; no framing) and a strong ETag, so a
//! browser revalidates with one conditional request per file and downloads
//! nothing that has not changed.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

pub struct Asset {
    /// Path under `console/` (and under `/console/` on the wire).
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! assets {
    ($(($path:literal, $ty:expr)),* $(,)?) => {
        &[$(Asset {
            path: $path,
            content_type: $ty,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console. A unit test checks this list against the
/// directory, so a new module cannot be forgotten here.
pub static ASSETS: &[Asset] = assets![
    ("index.html", "text/html; charset=utf-8"),
    ("app.css", "text/css; charset=utf-8"),
    ("favicon.svg", "image/svg+xml"),
    ("js/main.js", JS),
    ("js/api.js", JS),
    ("js/dom.js", JS),
    ("js/text.js", JS),
    ("js/forms.js", JS),
    ("js/signin_form.js", JS),
    ("js/pages/signin.js", JS),
    ("js/pages/playground.js", JS),
    ("js/pages/task_view.js", JS),
    ("js/pages/tasks.js", JS),
    ("js/pages/credits.js", JS),
    ("js/pages/keys.js", JS),
    ("js/pages/webhooks.js", JS),
    ("js/pages/docs.js", JS),
    // The operator console (issue 22), served at /admin/; it shares dom.js, api.js,
    // forms.js and the task player with the account console.
    ("admin/index.html", "text/html; charset=utf-8"),
    ("admin/admin.css", "text/css; charset=utf-8"),
    ("admin/js/main.js", JS),
    ("admin/js/client.js", JS),
    ("admin/js/ui.js", JS),
    ("admin/js/charts.js", JS),
    ("admin/js/pages/signin.js", JS),
    ("admin/js/pages/overview.js", JS),
    ("admin/js/pages/accounts.js", JS),
    ("admin/js/pages/account.js", JS),
    ("admin/js/pages/tasks.js", JS),
    ("admin/js/pages/usage.js", JS),
    ("admin/js/pages/audit.js", JS),
    ("admin/js/pages/providers.js", JS),
    // uPlot 1.6.32 (MIT), as published on npm: charts for the operator console.
    ("admin/vendor/uPlot.iife.min.js", JS),
    ("admin/vendor/uPlot.min.css", "text/css; charset=utf-8"),
    ("admin/vendor/uPlot.LICENSE", "text/plain; charset=utf-8"),
];

/// The console's pages: each answers `index.html`, whose router draws the page.
pub const PAGES: [&str; 7] = [
    "/",
    "/tasks",
    "/tasks/{task_id}",
    "/credits",
    "/keys",
    "/webhooks",
    "/docs",
];

/// `default-src 'none'` and only what the console uses, all from this
/// origin: `blob:` images are previews of files picked for upload (never
/// sent anywhere), `data:` none. No `'unsafe-inline'` anywhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
     media-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.bytes))[..32]))
            .collect()
    })
}

/// The operator console's pages answer `admin/index.html`; its router draws the page
/// (and its own not-found page for a path it does not know).
pub const ADMIN_PAGES: [&str; 3] = ["/admin", "/admin/", "/admin/{*rest}"];

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut r = Router::new().route("/console/{*path}", get(asset));
    for p in PAGES {
        r = r.route(p, get(page));
    }
    for p in ADMIN_PAGES {
        r = r.route(p, get(admin_page));
    }
    r
}

async fn page(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn admin_page(headers: HeaderMap) -> Response {
    serve("admin/index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        let mut r = (StatusCode::NOT_FOUND, "not found").into_response();
        secure(r.headers_mut());
        return r;
    };
    let (a, etag) = (&ASSETS[i], &etags()[i]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = a.bytes.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(a.content_type),
        );
        r
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidate every time (a 304 costs a round trip, no bytes): the files
    // keep their names across releases, so a long max-age would serve an
    // old module next to a new one.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(h);
    r
}

fn secure(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
}

/// Bytes of the first load of the playground: the page, the stylesheet and
/// every module (all are preloaded), before the catalog and balance calls.
pub fn first_load_bytes() -> usize {
    ASSETS
        .iter()
        .filter(|a| a.path != "favicon.svg" && !a.path.starts_with("admin/"))
        .map(|a| a.bytes.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("console dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                files(&p, base, out);
            } else {
                let rel = p.strip_prefix(base).expect("under console/");
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_console_file_is_compiled_in_and_every_module_preloaded() {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = Vec::new();
        files(&base, &base, &mut on_disk);
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
        // Each console preloads every module it imports, so its first load is one
        // round of parallel requests, not a waterfall of imports.
        let text = |path: &str| {
            let a = ASSETS.iter().find(|a| a.path == path).expect("listed");
            std::str::from_utf8(a.bytes).expect("utf-8")
        };
        for (index, main) in [
            ("index.html", "js/main.js"),
            ("admin/index.html", "admin/js/main.js"),
        ] {
            let html = text(index);
            let mut seen = std::collections::BTreeSet::new();
            let mut todo = vec![main.to_owned()];
            while let Some(m) = todo.pop() {
                for dep in imports(&m, text(&m)) {
                    if seen.insert(dep.clone()) {
                        todo.push(dep);
                    }
                }
            }
            assert!(seen.len() > 3, "{index}: found only {seen:?}");
            for dep in seen {
                assert!(
                    html.contains(&format!("rel=\"modulepreload\" href=\"/console/{dep}\"")),
                    "{dep} is imported but not preloaded by {index}"
                );
            }
        }
    }

    /// The modules `path` imports (`from "./x.js"`), as paths under `console/`.
    fn imports(path: &str, source: &str) -> Vec<String> {
        let dir: Vec<&str> =
            path.split('/').collect::<Vec<_>>()[..path.split('/').count() - 1].to_vec();
        source
            .split("from \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(|spec| {
                let mut parts: Vec<&str> = dir.clone();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                parts.join("/")
            })
            .collect()
    }

    #[test]
    fn no_inline_script_or_third_party_origin() {
        for a in ASSETS {
            let text = String::from_utf8_lossy(a.bytes);
            assert!(!text.contains("innerHTML"), "{} uses innerHTML", a.path);
            assert!(!text.contains("eval("), "{} uses eval", a.path);
            // The vendored library names its home page in its banner comment.
            if a.path.contains("vendor/") {
                continue;
            }
            for origin in ["https://", "http://", "//cdn"] {
                if a.path.ends_with(".js") || a.path.ends_with(".css") || a.path.ends_with(".html")
                {
                    assert!(
                        !text.contains(origin) || a.path == "js/pages/webhooks.js",
                        "{} names another origin",
                        a.path
                    );
                }
            }
        }
        let index = String::from_utf8_lossy(ASSETS[0].bytes);
        assert_eq!(index.matches("<script").count(), 1);
        assert!(index.contains("<script type=\"module\" src=\"/console/js/main.js\"></script>"));
        assert!(!index.contains("style="));
        let admin = ASSETS
            .iter()
            .find(|a| a.path == "admin/index.html")
            .map(|a| String::from_utf8_lossy(a.bytes))
            .expect("admin index");
        // uPlot (a classic script, deferred, so it runs before the module) and the app.
        assert_eq!(admin.matches("<script").count(), 2);
        assert!(
            admin.contains(
                "<script src=\"/console/admin/vendor/uPlot.iife.min.js\" defer></script>"
            )
        );
        assert!(
            admin.contains("<script type=\"module\" src=\"/console/admin/js/main.js\"></script>")
        );
        assert!(!admin.contains("style="));
        // The vendored library neither evaluates strings nor writes markup.
        let uplot = ASSETS
            .iter()
            .find(|a| a.path == "admin/vendor/uPlot.iife.min.js")
            .map(|a| String::from_utf8_lossy(a.bytes))
            .expect("uPlot");
        for bad in [
            "eval(",
            "new Function",
            "innerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!uplot.contains(bad), "uPlot uses {bad}");
        }
    }

    #[test]
    fn first_load_is_small() {
        let n = first_load_bytes();
        assert!(n < 80 * 1024, "first load grew to {n} bytes");
    }
}
