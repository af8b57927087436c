//! Sources: where records enter the pipeline. Today there is one, [`file`], the tailer.

pub mod file;
