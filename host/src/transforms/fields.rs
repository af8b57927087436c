//! Static enrichment: `fields: { cluster: prod-eu-1, pod: "${POD_NAME}" }` sets the same fields
//! on every record of the stream (after the parser, so these values win).

use crate::event::Batch;
use crate::stats::StreamStats;
use crate::transforms::Transform;

#[derive(Debug, Clone)]
pub struct AddFields {
    pub fields: crate::event::Fields,
}

impl Transform for AddFields {
    fn process(&mut self, batch: &mut Batch, _stats: &StreamStats) {
        for f in batch.fields_mut() {
            for (k, v) in &self.fields {
                f.insert(k.clone(), v.clone());
            }
        }
    }
}
