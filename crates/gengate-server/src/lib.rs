//! gengate's HTTP face: the routes of the public API (thin handlers that
//! parse, call the engine, and serialise), the error envelope that every
//! engine error is mapped to once, the OpenAPI document, the accept loop
//! with its connection limits and timeouts, and the console's files.
//! `app` wires an `Engine` to the router and starts both; the `gengate`
//! binary (`src/main.rs`) parses the command line.
//!
//! Below it: `gengate-engine` (the domain and its background work) and
//! `gengate-cli` (the API user's commands). Nothing here holds a domain rule.

pub mod app;
pub mod config;
pub mod console;
pub mod http;
pub mod server;
pub mod telemetry;
