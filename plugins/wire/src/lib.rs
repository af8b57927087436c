//! The numbers of tailcar's plugin boundary, defined once for both sides of it: the host
//! (`host/`, which packs batches into `wit/plugin.wit`'s columns and applies outputs) and the
//! Rust plugin SDK (`plugins/sdk`, which reads those columns and writes outputs). The Python
//! and JavaScript SDKs spell the same numbers in their own languages; `wit/plugin.wit` is where
//! all of them are described.

#![no_std]

/// `changes` bits of an output record: which parts of the input record it replaces.
pub mod changes {
    /// The line.
    pub const LINE: u8 = 1;
    /// The event time.
    pub const TIME: u8 = 2;
    /// The fields.
    pub const FIELDS: u8 = 4;
    /// The sinks the record goes to.
    pub const ROUTE: u8 = 8;
}

/// `kinds` of a field value.
pub mod kind {
    pub const NULL: u8 = 0;
    pub const FALSE: u8 = 1;
    pub const TRUE: u8 = 2;
    pub const INT: u8 = 3;
    pub const FLOAT: u8 = 4;
    /// UTF-8 text in the batch's string buffer.
    pub const TEXT: u8 = 5;
    /// A nested value (object or array) as JSON text in the string buffer.
    pub const JSON: u8 = 6;
}

/// `nanos` of a record without an event time.
pub const NO_TIME: u32 = u32::MAX;

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;
    use std::string::String;

    use super::changes::*;
    use super::kind::*;
    use super::*;

    fn sdk(path: &str) -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::read_to_string(root.join(path)).unwrap()
    }

    fn assert_has(text: &str, line: &str, file: &str) {
        assert!(
            text.lines().any(|l| l.trim() == line),
            "{file} does not say `{line}`: the plugin boundary's numbers drifted"
        );
    }

    #[test]
    fn the_python_and_javascript_sdks_spell_the_same_numbers() {
        let kinds = [NULL, FALSE, TRUE, INT, FLOAT, TEXT, JSON];
        let py = sdk("python/sdk/tailcar_plugin.py");
        let file = "plugins/python/sdk/tailcar_plugin.py";
        assert!(kinds.iter().enumerate().all(|(i, &k)| usize::from(k) == i));
        assert_has(
            &py,
            "_NULL, _FALSE, _TRUE, _INT, _FLOAT, _TEXT, _JSON = range(7)",
            file,
        );
        assert_has(
            &py,
            &format!("_LINE, _TIME, _FIELDS, _ROUTE = {LINE}, {TIME}, {FIELDS}, {ROUTE}"),
            file,
        );
        assert_eq!(u64::from(NO_TIME), (1 << 32) - 1);
        assert_has(&py, "_NO_TIME = 2**32 - 1", file);

        let js = sdk("javascript/sdk/tailcar_plugin.js");
        let file = "plugins/javascript/sdk/tailcar_plugin.js";
        assert_has(
            &js,
            &format!(
                "const NULL = {NULL}, FALSE = {FALSE}, TRUE = {TRUE}, INT = {INT}, FLOAT = {FLOAT}, TEXT = {TEXT}, JSON_KIND = {JSON};"
            ),
            file,
        );
        assert_has(
            &js,
            &format!("const LINE = {LINE}, TIME = {TIME}, FIELDS = {FIELDS}, ROUTE = {ROUTE};"),
            file,
        );
        assert_has(&js, &format!("const NO_TIME = {NO_TIME:#x};"), file);
    }
}
