//! `${VAR}` substitution in the configuration text, before it is parsed.
//!
//! `${VAR}` is replaced by the variable's value and is an error when it is unset;
//! `${VAR:-default}` falls back to `default`; `$$` is a literal `$`. Lines that are only a
//! comment are left alone, so a commented-out reference to an unset variable is no error.

use std::sync::LazyLock;

use regex::Regex;

static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}").expect("static regex")
});

/// An unset variable: its name and the 1-based line it is referenced on.
#[derive(Debug, PartialEq, Eq)]
pub struct Unset {
    pub var: String,
    pub line: usize,
}

/// Replaces the references in `text`, looking variables up with `lookup`.
pub fn substitute(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Unset> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut last = 0;
        for caps in REFERENCE.captures_iter(line) {
            let m = caps.get(0).expect("whole match");
            out.push_str(&line[last..m.start()]);
            last = m.end();
            let Some(var) = caps.get(1) else {
                out.push('$');
                continue;
            };
            match (lookup(var.as_str()), caps.get(2)) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(default)) => out.push_str(default.as_str()),
                (None, None) => {
                    return Err(Unset {
                        var: var.as_str().into(),
                        line: i + 1,
                    });
                }
            }
        }
        out.push_str(&line[last..]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "POD_NAME" => Some("web-1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_references_defaults_and_escapes() {
        let got = substitute(
            "pod: ${POD_NAME}\nns: ${NS:-default}\ncost: $$5 ${EMPTY}x\n",
            env,
        )
        .unwrap();
        assert_eq!(got, "pod: web-1\nns: default\ncost: $5 x\n");
    }

    #[test]
    fn unset_variable_is_an_error_with_its_line() {
        let err = substitute("a: 1\n# ${IGNORED_IN_COMMENT}\nb: ${MISSING}\n", env).unwrap_err();
        assert_eq!(
            err,
            Unset {
                var: "MISSING".into(),
                line: 3
            }
        );
    }

    #[test]
    fn text_without_references_is_unchanged() {
        let text = "a: '$HOME is not a reference'\nb: '{x}'\n";
        assert_eq!(substitute(text, env).unwrap(), text);
    }
}
