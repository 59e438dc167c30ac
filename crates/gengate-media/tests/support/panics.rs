//! Panic provenance for the hostile-input and fuzz tests: a hook records
//! where each panic on this thread happened, so a test can fail on a panic
//! in this crate's own code while a dependency's panic (caught by
//! `gengate-media` and turned into an error) only gets counted.

use std::cell::RefCell;
use std::panic;
use std::sync::Once;

thread_local! {
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Whether a panic location is in a dependency's source.
pub fn is_dependency(location: &str) -> bool {
    location.contains("/.cargo/registry/") || location.contains("/.cargo/git/")
}

/// Installs the recording hook once per process; our own panics still print.
pub fn install_panic_recorder() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            // try_with: a panic during thread teardown must not panic again.
            let _ = PANICS.try_with(|p| p.borrow_mut().push(location.clone()));
            if !is_dependency(&location) {
                default_hook(info);
            }
        }));
    });
}

/// The locations of the panics on this thread since the last call.
pub fn take_panics() -> Vec<String> {
    PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()))
}
