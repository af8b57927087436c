//! Discovery: expands a stream's paths and globs into the regular files they match now, and
//! names the directories to watch for files that appear later.
//!
//! File names are paths, not strings: a name that is not UTF-8 is matched by its lossy text
//! (an invalid byte reads as U+FFFD, which `*` and `?` match) and opened by its real bytes, so a
//! file `*.log` matches is read whatever bytes its name has.

use std::fs::Metadata;
use std::path::{Component, Path, PathBuf};

use glob::Pattern;

/// A stream's path patterns and exclusions, compiled.
#[derive(Debug, Clone)]
pub struct PathSet {
    /// Absolute patterns, each compiled when it has wildcards.
    include: Vec<(String, Option<Pattern>)>,
    exclude: Vec<Pattern>,
}

/// A directory to watch, and whether files below it (not just in it) can match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchDir {
    pub dir: PathBuf,
    pub recursive: bool,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl PathSet {
    /// Validates the patterns and makes them absolute (relative to the current directory), so
    /// watched directories, event paths and checkpoint paths all agree; the error names the bad
    /// pattern and why.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        let absolute = |p: &String| -> Result<String, String> {
            if p.is_empty() {
                return Err("empty path".into());
            }
            std::path::absolute(p)
                .map(|a| a.to_string_lossy().into_owned())
                .map_err(|e| format!("cannot resolve `{p}`: {e}"))
        };
        let include = include
            .iter()
            .map(absolute)
            .collect::<Result<Vec<_>, _>>()?;
        let exclude = exclude
            .iter()
            .map(absolute)
            .collect::<Result<Vec<_>, _>>()?;
        let include = include
            .into_iter()
            .map(|p| {
                let pattern = has_glob(&p)
                    .then(|| Pattern::new(&p).map_err(|e| format!("invalid glob `{p}`: {e}")))
                    .transpose()?;
                Ok((p, pattern))
            })
            .collect::<Result<_, String>>()?;
        let exclude = exclude
            .iter()
            .map(|p| Pattern::new(p).map_err(|e| format!("invalid glob `{p}`: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(PathSet { include, exclude })
    }

    /// The include patterns, absolute, as given.
    pub fn patterns(&self) -> Vec<&str> {
        self.include.iter().map(|(p, _)| p.as_str()).collect()
    }

    /// Whether `path` is one this set would match (by its name; the file need not exist).
    pub fn matches_path(&self, path: &Path) -> bool {
        let text = path.to_string_lossy();
        if self.exclude.iter().any(|x| x.matches(&text)) {
            return false;
        }
        self.include.iter().any(|(p, pattern)| match pattern {
            Some(pat) => pat.matches(&text),
            None => Path::new(p) == path,
        })
    }

    /// The regular files matched now, each once, in pattern order.
    pub fn matches(&self) -> Vec<(PathBuf, Metadata)> {
        let mut out: Vec<(PathBuf, Metadata)> = Vec::new();
        let push = |path: PathBuf, out: &mut Vec<(PathBuf, Metadata)>| {
            let text = path.to_string_lossy();
            if self.exclude.iter().any(|x| x.matches(&text)) || out.iter().any(|(p, _)| *p == path)
            {
                return;
            }
            if let Ok(meta) = std::fs::metadata(&path)
                && meta.is_file()
            {
                out.push((path, meta));
            }
        };
        for (pattern, compiled) in &self.include {
            if compiled.is_some() {
                let mut found = Vec::new();
                expand(Path::new(pattern), &mut found);
                found.sort();
                for path in found {
                    push(path, &mut out);
                }
            } else {
                push(PathBuf::from(pattern), &mut out);
            }
        }
        out
    }

    /// The directories whose changes can affect what matches: for each pattern, the deepest
    /// directory without wildcards (watched recursively when wildcards follow in directory
    /// components).
    pub fn watch_dirs(&self) -> Vec<WatchDir> {
        let mut out: Vec<WatchDir> = Vec::new();
        for (pattern, _) in &self.include {
            let path = Path::new(pattern);
            let mut fixed = PathBuf::new();
            let mut recursive = false;
            let comps: Vec<Component> = path.components().collect();
            for (i, c) in comps.iter().enumerate() {
                let s = c.as_os_str().to_string_lossy();
                if has_glob(&s) {
                    recursive = i + 1 < comps.len();
                    break;
                }
                if i + 1 == comps.len() {
                    break; // the file name itself
                }
                fixed.push(c.as_os_str());
            }
            let w = WatchDir {
                dir: fixed,
                recursive,
            };
            if !out.contains(&w) {
                out.push(w);
            }
        }
        out
    }
}

/// Expands an absolute glob component by component, reading directories with their real
/// (byte) names and matching each name by its lossy text. `**` matches any number of
/// directories, as in the `glob` crate.
fn expand(pattern: &Path, out: &mut Vec<PathBuf>) {
    let comps: Vec<&std::ffi::OsStr> = pattern.components().map(|c| c.as_os_str()).collect();
    let Some((root, rest)) = comps.split_first() else {
        return;
    };
    walk(PathBuf::from(root), rest, out);
}

fn walk(at: PathBuf, rest: &[&std::ffi::OsStr], out: &mut Vec<PathBuf>) {
    let Some((comp, rest)) = rest.split_first() else {
        out.push(at);
        return;
    };
    let text = comp.to_string_lossy();
    if !has_glob(&text) {
        let next = at.join(comp);
        if rest.is_empty() || next.is_dir() {
            walk(next, rest, out);
        }
        return;
    }
    if text == "**" {
        // Zero directories, then each subdirectory in turn (not following symlinked ones).
        walk(at.clone(), rest, out);
        if let Ok(entries) = std::fs::read_dir(&at) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(e.path(), &rest_with_star(comp, rest), out);
                }
            }
        }
        return;
    }
    let Ok(pattern) = Pattern::new(&text) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(&at) else {
        return;
    };
    // The `glob` crate's defaults, as `glob::glob` used them.
    let options = glob::MatchOptions::new();
    for e in entries.flatten() {
        let name = e.file_name();
        if !pattern.matches_with(&name.to_string_lossy(), options) {
            continue;
        }
        let next = e.path();
        if rest.is_empty() || next.is_dir() {
            walk(next, rest, out);
        }
    }
}

/// `**` followed by `rest`, to keep descending after one directory.
fn rest_with_star<'a>(
    star: &'a std::ffi::OsStr,
    rest: &[&'a std::ffi::OsStr],
) -> Vec<&'a std::ffi::OsStr> {
    let mut v = vec![star];
    v.extend_from_slice(rest);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_globs_and_literal_paths_and_skips_excluded() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["access.log", "error.log", "access.log.1", "other.txt"] {
            std::fs::write(d.join(f), "x\n").unwrap();
        }
        std::fs::create_dir(d.join("sub.log")).unwrap(); // a directory matching the glob
        let set = PathSet::new(
            &[
                format!("{}/*.log", d.display()),
                format!("{}/other.txt", d.display()),
                format!("{}/missing.log", d.display()),
            ],
            &[format!("{}/error*", d.display())],
        )
        .unwrap();
        let names: Vec<_> = set
            .matches()
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["access.log", "other.txt"]);
    }

    #[test]
    fn watch_dirs_stop_at_the_first_wildcard() {
        let set = PathSet::new(
            &[
                "/var/log/app/*.log".into(),
                "/var/log/app/error.log".into(),
                "/var/log/*/x.log".into(),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            set.watch_dirs(),
            vec![
                WatchDir {
                    dir: "/var/log/app".into(),
                    recursive: false
                },
                WatchDir {
                    dir: "/var/log".into(),
                    recursive: true
                },
            ]
        );
    }

    #[test]
    fn relative_patterns_are_made_absolute() {
        let set = PathSet::new(&["app.log".into()], &[]).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            set.watch_dirs(),
            vec![WatchDir {
                dir: cwd.clone(),
                recursive: false
            }]
        );
        assert!(set.matches_path(&cwd.join("app.log")));
    }

    #[test]
    fn a_name_that_is_not_utf8_is_matched_and_kept_as_its_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let odd = d.join(std::ffi::OsStr::from_bytes(b"caf\xe9.log"));
        std::fs::write(&odd, "x\n").unwrap();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/deep.log"), "x\n").unwrap();
        let set = PathSet::new(&[format!("{}/*.log", d.display())], &[]).unwrap();
        let found: Vec<PathBuf> = set.matches().into_iter().map(|(p, _)| p).collect();
        assert_eq!(found, vec![odd.clone()]);
        assert!(set.matches_path(&odd));
        let deep = PathSet::new(&[format!("{}/**/*.log", d.display())], &[]).unwrap();
        let mut found: Vec<PathBuf> = deep.matches().into_iter().map(|(p, _)| p).collect();
        found.sort();
        assert_eq!(found, vec![d.join("a/b/deep.log"), odd]);
    }

    #[test]
    fn bad_globs_are_named() {
        let err = PathSet::new(&["/var/log/[.log".into()], &[]).unwrap_err();
        assert!(err.contains("/var/log/[.log"), "{err}");
    }
}
