//! SIGINT and SIGTERM while `send-batch` runs: the first stops new sends (the ones in flight
//! finish, bounded by the timeout, and are journaled and printed; the tool then exits 130); a
//! second exits at once with 130, leaving what was in flight in doubt (the journal says so on
//! the next run). A single `send`, journaled or not, installs no handler: a signal ends it as
//! it ends any program, and a journaled send cut off in flight is in doubt on the next run.
//!
//! The handler only stores to atomics and, on the second signal, calls `_exit`: both are
//! async-signal-safe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

#[cfg(unix)]
use crate::exit;

static RECEIVED: AtomicUsize = AtomicUsize::new(0);
/// The library's stop flag (leaked: it lives as long as the process).
static FLAG: AtomicPtr<AtomicBool> = AtomicPtr::new(std::ptr::null_mut());

/// Installs the handlers and returns the flag they set, for `BatchOptions::stop_flag`.
pub fn install() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let leaked = Arc::into_raw(Arc::clone(&flag)).cast_mut();
    FLAG.store(leaked, Ordering::SeqCst);
    #[cfg(unix)]
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` is an `extern "C" fn(c_int)` that only touches atomics and calls
        // `_exit`; the sigaction struct is zeroed and then filled as sigaction(2) requires.
        #[allow(unsafe_code)]
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
    flag
}

/// Whether a stopping signal arrived.
pub fn received() -> bool {
    RECEIVED.load(Ordering::SeqCst) > 0
}

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {
    if RECEIVED.fetch_add(1, Ordering::SeqCst) > 0 {
        // SAFETY: _exit is async-signal-safe; the process ends here.
        #[allow(unsafe_code)]
        unsafe {
            libc::_exit(i32::from(exit::SIGNAL));
        }
    }
    let flag = FLAG.load(Ordering::SeqCst);
    if !flag.is_null() {
        // SAFETY: the pointer comes from `Arc::into_raw` and is never freed.
        #[allow(unsafe_code)]
        unsafe {
            (*flag).store(true, Ordering::SeqCst);
        }
    }
}
