//! Change detection: one `notify` (inotify) watcher for the whole process, with polling as the
//! fallback.
//!
//! Streams subscribe the directories their patterns live in with a [`Wake`]: a bounded(1)
//! channel that coalesces any number of events into one wake-up, a flag saying the directory's
//! entries changed (a file created, deleted or renamed: rescan the paths now rather than at the
//! next periodic scan), and the renames seen (`from` → `to`), so a file renamed away before
//! its stream ever opened it is still found and read. When inotify cannot be used (mode `poll`,
//! no inotify in the sandbox, or the instance or watch limits are reached) a subscription
//! reports so, and the stream polls at its `poll_interval` instead.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};
use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher as _};
use serde::{Deserialize, Serialize};

/// Renames remembered per stream between two scans; older ones are dropped beyond this.
const MAX_RENAMES: usize = 1024;

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

/// What a stream learns from the watcher.
#[derive(Debug)]
pub struct Wake {
    tx: Sender<()>,
    rx: Receiver<()>,
    rescan: AtomicBool,
    renames: Mutex<VecDeque<(PathBuf, PathBuf)>>,
}

impl Wake {
    pub fn new() -> Arc<Self> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        Arc::new(Wake {
            tx,
            rx,
            rescan: AtomicBool::new(false),
            renames: Mutex::default(),
        })
    }

    /// Wakes the stream (coalesced).
    pub fn wake(&self) {
        let _ = self.tx.try_send(());
    }

    /// Sleeps until woken or `timeout`.
    pub fn wait(&self, timeout: std::time::Duration) {
        let _ = self.rx.recv_timeout(timeout);
    }

    /// Whether directory entries changed since the last call.
    pub fn take_rescan(&self) -> bool {
        self.rescan.swap(false, Ordering::AcqRel)
    }

    /// The renames seen since the last call, oldest first.
    pub fn take_renames(&self) -> Vec<(PathBuf, PathBuf)> {
        self.renames
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect()
    }

    fn notify(&self, event: &notify::Event) {
        match &event.kind {
            // Data written or read: only a wake-up is needed.
            EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_))
            | EventKind::Access(_) => {}
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if event.paths.len() == 2 => {
                let mut renames = self.renames.lock().unwrap_or_else(|e| e.into_inner());
                if renames.len() == MAX_RENAMES {
                    renames.pop_front();
                }
                renames.push_back((event.paths[0].clone(), event.paths[1].clone()));
                self.rescan.store(true, Ordering::Release);
            }
            _ => self.rescan.store(true, Ordering::Release),
        }
        self.wake();
    }
}

struct Subscription {
    dir: PathBuf,
    recursive: bool,
    wake: Arc<Wake>,
}

pub struct Watcher {
    mode: WatchMode,
    inner: Mutex<Option<notify::RecommendedWatcher>>,
    subs: Arc<Mutex<Vec<Subscription>>>,
    watched: Mutex<Vec<PathBuf>>,
    warned: AtomicBool,
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
                // notify's thread runs this: a panic would silently end every inotify wake-up.
                let run = || {
                    let subs = subs.lock().unwrap_or_else(|e| e.into_inner());
                    match res {
                        Ok(ev) if !ev.need_rescan() => {
                            for s in subs.iter() {
                                if ev.paths.iter().any(|p| touches(p, &s.dir, s.recursive)) {
                                    s.wake.notify(&ev);
                                }
                            }
                        }
                        // An overflowed queue or an error: everyone rescans.
                        _ => {
                            for s in subs.iter() {
                                s.wake.rescan.store(true, Ordering::Release);
                                s.wake.wake();
                            }
                        }
                    }
                };
                if let Err(p) = crate::supervise::catch("inotify watcher", run) {
                    crate::supervise::report(p);
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
            warned: AtomicBool::new(false),
        }))
    }

    /// Subscribes `wake` to changes in `dir`. Returns `true` when inotify watches it, `false`
    /// when the caller must poll (the directory does not exist yet, or inotify is unavailable);
    /// call again later to retry.
    pub fn subscribe(&self, dir: &Path, recursive: bool, wake: &Arc<Wake>) -> bool {
        {
            let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
            if !subs
                .iter()
                .any(|s| s.dir == dir && Arc::ptr_eq(&s.wake, wake))
            {
                subs.push(Subscription {
                    dir: dir.to_path_buf(),
                    recursive,
                    wake: Arc::clone(wake),
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
                if self.mode == WatchMode::Inotify || !self.warned.swap(true, Ordering::Relaxed) {
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
    use std::time::{Duration, Instant};

    fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn reports_writes_creations_and_renames() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().canonicalize().unwrap();
        let w = Watcher::new(WatchMode::Auto).unwrap();
        let wake = Wake::new();
        assert!(
            w.subscribe(&dir, false, &wake),
            "inotify is available on Linux test machines"
        );
        std::fs::write(dir.join("a.log"), "x\n").unwrap();
        assert!(
            wait_for(|| wake.take_rescan()),
            "a created file asks for a rescan"
        );
        wake.take_renames();
        std::fs::rename(dir.join("a.log"), dir.join("a.log.1")).unwrap();
        let mut renames = Vec::new();
        assert!(wait_for(|| {
            renames.extend(wake.take_renames());
            !renames.is_empty()
        }));
        assert_eq!(renames, vec![(dir.join("a.log"), dir.join("a.log.1"))]);
    }

    #[test]
    fn poll_mode_never_watches() {
        let dir = tempfile::tempdir().unwrap();
        let w = Watcher::new(WatchMode::Poll).unwrap();
        assert!(!w.subscribe(dir.path(), false, &Wake::new()));
    }
}
