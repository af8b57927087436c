//! Static enrichment: `fields: { cluster: prod-eu-1, pod: "${POD_NAME}" }` sets the same fields
//! on every record of the stream (after the parser, so these values win). They are kept once per
//! batch, in the field store's shared section, and written per record only by the sinks.

use crate::event::Batch;
use crate::stats::StreamStats;
use crate::transforms::Transform;

#[derive(Debug, Clone)]
pub struct AddFields {
    pub fields: crate::event::Fields,
}

impl Transform for AddFields {
    fn process(&mut self, batch: &mut Batch, _stats: &StreamStats) {
        let mut w = batch.fields_mut().shared_writer();
        for (k, v) in &self.fields {
            w.json(k, v);
        }
    }
}
