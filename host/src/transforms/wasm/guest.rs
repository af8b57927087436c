//! Which language runtime a plugin component embeds, and the memory that runtime needs.
//!
//! A Rust plugin is its own code and starts in a few hundred KiB. A Python plugin built with
//! componentize-py carries CPython (its heap starts at about 13 MiB of linear memory), a
//! JavaScript one built with componentize-js carries StarlingMonkey (SpiderMonkey), whose garbage
//! collector needs room to work under a steady stream of batches. Below those floors a plugin
//! either cannot start or traps on memory over and over, and each trap costs a re-instantiation:
//! tailcar refuses such a `limits.memory` at start with the reason, instead of failing batches
//! later. The runtimes are recognised by the names they embed (CPython's `libpython3.N.so` core
//! module, StarlingMonkey's and QuickJS's own names).

use memchr::memmem;

use super::runtime::size;

/// The runtime a component embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guest {
    /// Compiled code with no embedded language runtime (Rust, C, TinyGo, ...).
    Native,
    /// CPython, from componentize-py.
    Python,
    /// StarlingMonkey (SpiderMonkey), from componentize-js.
    StarlingMonkey,
    /// QuickJS, from componentize-qjs.
    QuickJs,
}

impl Guest {
    /// Recognises the runtime from the component's bytes.
    pub fn detect(bytes: &[u8]) -> Guest {
        if memmem::find(bytes, b"libpython3.").is_some()
            && memmem::find(bytes, b"componentize-py").is_some()
        {
            Guest::Python
        } else if memmem::find(bytes, b"StarlingMonkey").is_some() {
            Guest::StarlingMonkey
        } else if memmem::find(bytes, b"componentize-qjs").is_some()
            || memmem::find(bytes, b"rquickjs").is_some()
        {
            Guest::QuickJs
        } else {
            Guest::Native
        }
    }

    /// What to call it in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Guest::Native => "a native plugin",
            Guest::Python => "a Python plugin (CPython, componentize-py)",
            Guest::StarlingMonkey => "a JavaScript plugin (StarlingMonkey, componentize-js)",
            Guest::QuickJs => "a JavaScript plugin (QuickJS, componentize-qjs)",
        }
    }

    /// Refuses a memory limit below [`Guest::min_memory`], saying why.
    pub fn check_memory(self, plugin: &str, memory: u64) -> Result<(), String> {
        let floor = self.min_memory();
        if memory >= floor {
            return Ok(());
        }
        Err(format!(
            "{} is below what plugin `{plugin}` needs: it is {}, which needs at least {} of linear memory",
            size(memory as usize),
            self.describe(),
            size(floor as usize)
        ))
    }

    /// The least `limits.memory` tailcar accepts for it. Measured with `tailcar plugin test
    /// --memory` on the example plugins: CPython 3.14 asks for 13.2 MiB before `init` returns;
    /// StarlingMonkey starts at 9.1 MiB but its collector needs 32 MiB for sustained use;
    /// QuickJS runs in about 4 MiB.
    pub fn min_memory(self) -> u64 {
        match self {
            Guest::Native => 1 << 20,
            Guest::Python => 16 << 20,
            Guest::StarlingMonkey => 32 << 20,
            Guest::QuickJs => 4 << 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_runtimes_by_what_they_embed() {
        assert_eq!(Guest::detect(b"\0asm rust code"), Guest::Native);
        assert_eq!(
            Guest::detect(b"..libpython3.14.so..componentize-py.."),
            Guest::Python
        );
        assert_eq!(
            Guest::detect(b"..libpython3.14.so.. but no marker"),
            Guest::Native,
            "both markers are needed"
        );
        assert_eq!(Guest::detect(b"..StarlingMonkey.."), Guest::StarlingMonkey);
        assert_eq!(Guest::detect(b"..componentize-qjs.."), Guest::QuickJs);
        assert!(Guest::Python.min_memory() > 14 << 20);
        assert_eq!(
            Guest::StarlingMonkey
                .check_memory("js", 16 << 20)
                .unwrap_err(),
            "16MiB is below what plugin `js` needs: it is a JavaScript plugin (StarlingMonkey, componentize-js), which needs at least 32MiB of linear memory"
        );
        assert!(Guest::Native.check_memory("rs", 1 << 20).is_ok());
    }
}
