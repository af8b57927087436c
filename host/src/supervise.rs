//! Supervision: the one rule every thread and task tailcar starts runs under.
//!
//! A panic is caught where the thread or task was started ([`catch`] for threads,
//! [`catch_task`] for tokio tasks), turned into a [`Panicked`] error naming the component
//! (`stream access`, `sink es`, `checkpointer`) and the panic message, and handed to the
//! application, which logs it, counts it, turns `/healthz` to 503 with the reason and shuts the
//! process down with exit code 70: a stream or sink that died never pretends to run, and the
//! kubelet restarts the container, which resumes from the checkpoints (they hold only what was
//! acknowledged). The panic hook ([`install_panic_hook`]) logs where the panic happened, with the
//! thread's name, through tailcar's own log.
//!
//! Helpers that no run owns (the plugin epoch ticker, the inotify callback, the admin endpoint)
//! [`report`] their panics here instead; the running topology waits on [`reported`] beside its
//! own components, so they end the run the same way.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use tokio::sync::Notify;

/// A component that panicked: which one, and the panic message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked {
    /// `stream access`, `sink es`, `checkpointer`...
    pub component: String,
    pub message: String,
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} panicked: {}", self.component, self.message)
    }
}

impl std::error::Error for Panicked {}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Runs `f`, turning a panic into [`Panicked`] for `component`.
pub fn catch<R>(component: &str, f: impl FnOnce() -> R) -> Result<R, Panicked> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| Panicked {
        component: component.to_string(),
        message: panic_message(p.as_ref()),
    })
}

/// Runs `fut` as its own tokio task and waits for it, turning a panic into [`Panicked`] for
/// `component` (a cancelled task, which tailcar never does, reads as a panic too).
pub async fn catch_task<R: Send + 'static>(
    component: &str,
    fut: impl Future<Output = R> + Send + 'static,
) -> Result<R, Panicked> {
    tokio::spawn(fut).await.map_err(|e| Panicked {
        component: component.to_string(),
        message: if e.is_panic() {
            panic_message(e.into_panic().as_ref())
        } else {
            "the task was cancelled".to_string()
        },
    })
}

/// Panics of process-wide helpers, waiting for the running topology to take them.
static REPORTED: Mutex<Vec<Panicked>> = Mutex::new(Vec::new());
static REPORTED_WAKE: Notify = Notify::const_new();

/// Hands the panic of a helper no run owns to the running topology (see [`reported`]).
pub fn report(failure: Panicked) {
    REPORTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(failure);
    // A permit is kept when nobody waits yet, so the failure is never missed.
    REPORTED_WAKE.notify_one();
}

/// The next [`report`]ed panic, once there is one.
pub async fn reported() -> Panicked {
    loop {
        if let Some(p) = take_reported() {
            return p;
        }
        REPORTED_WAKE.notified().await;
    }
}

/// A [`report`]ed panic not taken yet, if any.
pub fn take_reported() -> Option<Panicked> {
    let mut all = REPORTED.lock().unwrap_or_else(|e| e.into_inner());
    (!all.is_empty()).then(|| all.remove(0))
}

/// Starts a named thread running `f` under supervision: a panic is [`report`]ed.
pub fn spawn_thread(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let component = name.to_string();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Err(p) = catch(&component, f) {
                report(p);
            }
        })
}

/// Whether the fail point `name` is armed: named in `TAILCAR_FAILPOINTS` (comma-separated),
/// a testing aid that lets the integration tests make a real stream or sink panic (say
/// `stream-panic:access` or `sink-panic:out`) to check what supervision does with it. Read
/// once where a component starts, never per record.
pub fn failpoint(name: &str) -> bool {
    std::env::var("TAILCAR_FAILPOINTS")
        .map(|v| v.split(',').any(|f| f.trim() == name))
        .unwrap_or(false)
}

/// Logs every panic through tailcar's log (with the thread and the source location) before it
/// unwinds to the [`catch`] that turns it into a failure.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            %location,
            "panic: {}",
            panic_message(info.payload())
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_naming_the_component() {
        let e = catch("stream a", || -> u32 { panic!("boom {}", 7) }).unwrap_err();
        assert_eq!(e.to_string(), "stream a panicked: boom 7");
        assert_eq!(catch("x", || 3).unwrap(), 3);
    }

    #[tokio::test]
    async fn a_panicking_task_becomes_an_error() {
        let e = catch_task("sink es", async { panic!("static text") })
            .await
            .unwrap_err();
        assert_eq!(e.message, "static text");
        assert_eq!(catch_task("x", async { 5 }).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn a_panicking_helper_thread_is_reported() {
        let waiting = tokio::spawn(reported());
        spawn_thread("helper-test", || panic!("helper down"))
            .unwrap()
            .join()
            .unwrap();
        let p = waiting.await.unwrap();
        assert_eq!(p.to_string(), "helper-test panicked: helper down");
        assert_eq!(take_reported(), None);
    }
}
