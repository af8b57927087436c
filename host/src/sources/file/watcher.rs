//! Change detection: one `notify` (inotify) watcher for the whole process, with polling as the
//! fallback.
//!
//! Streams subscribe the directories their patterns live in, with a waker: a bounded(1) channel
//! that coalesces any number of events into one wake-up. When inotify cannot be used (mode
//! `poll`, no inotify in the sandbox, or the instance or watch limits are reached) a
//! subscription reports so, and the stream polls at its `poll_interval` instead.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use notify::{RecursiveMode, Watcher as _};
use serde::{Deserialize, Serialize};

/// How changes are detected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum WatchMode {
    /// inotify where it works, polling where it does not.
    #[default]
    Auto,
    /// inotify only: failing to set it up is an error.
    Inotify,
    /// stat polling only.
    Poll,
}

struct Subscription {
    dir: PathBuf,
    recursive: bool,
    waker: Sender<()>,
}

pub struct Watcher {
    mode: WatchMode,
    inner: Mutex<Option<notify::RecommendedWatcher>>,
    subs: Arc<Mutex<Vec<Subscription>>>,
    watched: Mutex<Vec<PathBuf>>,
    warned: std::sync::atomic::AtomicBool,
}

impl Watcher {
    /// Sets up the process's watcher. With [`WatchMode::Inotify`], failing to create it is an error.
    pub fn new(mode: WatchMode) -> anyhow::Result<Arc<Self>> {
        let subs: Arc<Mutex<Vec<Subscription>>> = Arc::default();
        let inner = if mode == WatchMode::Poll {
            None
        } else {
            let subs = Arc::clone(&subs);
            match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let subs = subs.lock().unwrap_or_else(|e| e.into_inner());
                match res {
                    Ok(ev) if !ev.need_rescan() => {
                        for s in subs.iter() {
                            if ev.paths.iter().any(|p| touches(p, &s.dir, s.recursive)) {
                                let _ = s.waker.try_send(());
                            }
                        }
                    }
                    // Overflowed queue or an error: wake everyone to rescan.
                    _ => {
                        for s in subs.iter() {
                            let _ = s.waker.try_send(());
                        }
                    }
                }
            }) {
                Ok(w) => Some(w),
                Err(e) if mode == WatchMode::Inotify => {
                    anyhow::bail!("cannot set up inotify (watch: inotify was asked for): {e}")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "inotify is unavailable; polling for changes instead");
                    None
                }
            }
        };
        Ok(Arc::new(Watcher {
            mode,
            inner: Mutex::new(inner),
            subs,
            watched: Mutex::default(),
            warned: Default::default(),
        }))
    }

    /// Subscribes `waker` to changes in `dir`. Returns `true` when inotify watches it, `false`
    /// when the caller must poll (the directory does not exist yet, or inotify is unavailable);
    /// call again later to retry.
    pub fn subscribe(&self, dir: &Path, recursive: bool, waker: &Sender<()>) -> bool {
        {
            let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
            if !subs
                .iter()
                .any(|s| s.dir == dir && s.waker.same_channel(waker))
            {
                subs.push(Subscription {
                    dir: dir.to_path_buf(),
                    recursive,
                    waker: waker.clone(),
                });
            }
        }
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if watched.iter().any(|d| d == dir) {
            return true;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = inner.as_mut() else {
            return false;
        };
        if !dir.is_dir() {
            return false;
        }
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        match w.watch(dir, mode) {
            Ok(()) => {
                watched.push(dir.to_path_buf());
                true
            }
            Err(e) => {
                if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(dir = %dir.display(), error = %e,
                        "cannot watch with inotify (limits such as fs.inotify.max_user_watches?); polling instead");
                }
                false
            }
        }
    }

    pub fn mode(&self) -> WatchMode {
        self.mode
    }
}

fn touches(path: &Path, dir: &Path, recursive: bool) -> bool {
    if recursive {
        path.starts_with(dir)
    } else {
        path == dir || path.parent() == Some(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wakes_a_subscriber_when_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let w = Watcher::new(WatchMode::Auto).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        assert!(
            w.subscribe(dir.path(), false, &tx),
            "inotify is available on Linux test machines"
        );
        std::fs::write(dir.path().join("a.log"), "x\n").unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn poll_mode_never_watches() {
        let dir = tempfile::tempdir().unwrap();
        let w = Watcher::new(WatchMode::Poll).unwrap();
        let (tx, _rx) = crossbeam_channel::bounded(1);
        assert!(!w.subscribe(dir.path(), false, &tx));
    }
}
