//! The gengate server: a thin HTTP layer over the domain, the runner that
//! drives providers, and the operator commands. `app::App` wires them; the
//! binary (`main.rs`) only parses the command line.

pub mod accounts;
pub mod app;
pub mod background;
pub mod blobs;
pub mod callbacks;
pub mod cli;
pub mod config;
pub mod console;
pub mod decode_budget;
pub mod events;
pub mod fetch;
pub mod files;
pub mod generations;
pub mod http;
pub mod keycache;
pub mod keys;
pub mod limits;
pub mod node;
pub mod providers;
pub mod runner;
pub mod server;
pub mod shared_limits;
pub mod signing;
pub mod taskcache;
pub mod telemetry;
pub mod webhooks;
