//! The benchmark baseline: one axum GET handler answering a small JSON body,
//! on the same tokio runtime flavour as `gengate serve` (multi-thread; pinned
//! to one core by `taskset`, it runs one worker). `bench/run.sh` measures it
//! in every run and reports each gengate figure as a ratio to it.
//!
//! Usage: `gengate-bench-baseline [ADDR]` (default 127.0.0.1:8090).

use axum::Json;
use axum::Router;
use axum::routing::get;

async fn handler() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "id": "task_baseline",
        "object": "generation",
        "status": "queued",
    }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let app = Router::new().fallback(get(handler));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("baseline listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
