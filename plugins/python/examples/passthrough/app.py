"""passthrough (Python): keeps every record as it is. The smallest plugin, a template, and the
benchmark's baseline for what the Python runtime costs per record."""

import tailcar_plugin as tp


class Passthrough(tp.Plugin):
    def process(self, record):
        return tp.KEEP


WitWorld = tp.export(Passthrough)
